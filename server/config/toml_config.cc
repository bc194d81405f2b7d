#include "server/config/toml_config.h"

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "server/config/toml_prefilter.h"
#include "server/config/tls_config.h"
#include "server/config/toml_reader.h"
#include "server/config/udp_config.h"

namespace ringlb {

struct TomlFile::Doc {
  std::string path;
  toml::table table;
};

using toml_reader::Errors;
using toml_reader::get_text;
using toml_reader::KeyReader;
using toml_reader::line_of;
using toml_reader::read_backend;
using toml_reader::read_etcd;
using toml_reader::show;

namespace {

std::string names_of(const std::map<std::string, int>& clusters) {
  std::string names;
  for (const auto& [name, line] : clusters) names += (names.empty() ? "" : ", ") + name;
  return names.empty() ? "none" : names;
}

}  // namespace

TomlFile::TomlFile() = default;
TomlFile::~TomlFile() = default;

Status TomlFile::load(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  if (!in || !(text << in.rdbuf())) {
    return Status::error("cannot read config file '" + path + "': " + strerror(errno));
  }
  // Read whole and parsed in memory: a file this large is a mistake (or not a config file).
  if (text.tellp() > static_cast<std::streamoff>(limits::kMaxConfigFileBytes)) {
    return Status::error(path + ": larger than " + std::to_string(limits::kMaxConfigFileBytes >> 20) +
                         " MiB: not a config file");
  }
  return load_text(text.str(), path);
}

Status TomlFile::load_text(const std::string& contents, const std::string& path) {
  // TOML allows no control character but tab and the line ends, in strings and comments too;
  // toml++ asserts on some (a NUL where a key starts), so they are refused before it sees them.
  size_t line = 1;
  for (const char c : contents) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '\n') ++line;
    if ((u < 0x20 && c != '\t' && c != '\n' && c != '\r') || u == 0x7f) {
      char code[8];
      snprintf(code, sizeof(code), "0x%02x", u);
      return Status::error(path + ":" + std::to_string(line) + ": toml syntax: a control character (" + code +
                           ") where TOML allows none");
    }
  }
  std::string safe, why;
  if (const size_t line = toml_prefilter::prepare(contents, &safe, &why); line != 0) {
    return Status::error(path + ":" + std::to_string(line) + ": toml syntax: " + why);
  }
  std::stringstream text(safe);
  auto doc = std::make_unique<Doc>();
  doc->path = path;
  try {
    doc->table = toml::parse(text.str(), std::string_view(path));
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    std::string message = std::string(e.description()) + " (column " + std::to_string(where.column) + ")";
    // The old INI form (key = value, unquoted) is the likeliest cause of a syntax error.
    std::string line;
    std::stringstream lines(text.str());
    for (size_t i = 0; i < where.line && std::getline(lines, line); ++i) {
    }
    const size_t eq = line.find('=');
    const size_t value = line.find_first_not_of(" \t", eq == std::string::npos ? eq : eq + 1);
    if (value != std::string::npos && std::string("\"'[{tf-0123456789").find(line[value]) == std::string::npos) {
      message += "; strings need quotes: key = \"value\" (the config file is TOML; the INI form is gone)";
    } else if (value != std::string::npos && line.find(':', value) != std::string::npos &&
               line[value] != '"' && line[value] != '\'') {
      message += "; addresses need quotes: address = \"127.0.0.1:80\" (the config file is TOML; the INI form is gone)";
    }
    return Status::error(path + ":" + std::to_string(where.line) + ": toml syntax: " + message);
  }
  doc_ = std::move(doc);
  return {};
}

bool TomlFile::has_services() const {
  return doc_ && (doc_->table.contains("cluster") || doc_->table.contains("listener"));
}

Status TomlFile::apply_top(Defaults* d) const {
  Errors errors(doc_->path);
  KeyReader keys(Scope::kTop, "", &errors);
  Target target;
  target.top = d;
  const std::vector<std::string> structural = {"cluster", "listener", "etcd", "resolvers"};
  const toml::key* metrics_key = nullptr;
  const toml::node* metrics = nullptr;
  for (auto&& [k, v] : doc_->table) {
    if (k.str() == "cluster" || k.str() == "listener") continue;
    if (k.str() == "etcd") {
      read_etcd(v, &errors, &d->config.etcd);
      continue;
    }
    if (k.str() == "resolvers") {
      const toml::table* t = v.as_table();
      if (t == nullptr) {
        errors.add(line_of(v), "resolvers", "expected a [resolvers] table");
        continue;
      }
      KeyReader resolver_keys(Scope::kResolvers, "resolvers.", &errors);
      for (auto&& [rk, rv] : *t) resolver_keys.apply(rk, rv, target, {});
      continue;
    }
    // metrics = false wins over a metrics-listen in the file, whatever the order of the keys.
    if (k.str() == "metrics") {
      metrics_key = &k;
      metrics = &v;
      continue;
    }
    keys.apply(k, v, target, structural);
  }
  if (metrics != nullptr) keys.apply(*metrics_key, *metrics, target, structural);
  return errors.take();
}

Status TomlFile::build(const Defaults& d, Config* config) const {
  Errors errors(doc_->path);
  std::vector<std::pair<int, std::string>> tls_lines;  // each [*.tls] table: its line and key
  const toml::table& top = doc_->table;
  // Where a top-level (default) setting was written, for a cluster check it fails.
  auto top_line = [&](const std::string& canonical) {
    for (auto&& [k, v] : top) {
      const char* c = canonical_key(Scope::kTop, k.str());
      if (c != nullptr && canonical == c) return line_of(v);
    }
    return 0;
  };

  std::map<std::string, int> cluster_lines;  // name -> line of its table
  if (const toml::node* node = top.get("cluster")) {
    std::vector<std::pair<std::string, const toml::node*>> ordered;
    if (const toml::table* t = node->as_table()) {
      for (auto&& [k, v] : *t) ordered.push_back({std::string(k.str()), &v});
    } else {
      errors.add(line_of(*node), "cluster", "expected [cluster.NAME] tables");
    }
    // toml++ keeps a table's keys sorted; clusters keep the file's order (the first is the one
    // the runtime serves today).
    std::stable_sort(ordered.begin(), ordered.end(),
                     [](auto& a, auto& b) { return line_of(*a.second) < line_of(*b.second); });
    size_t backends_in_all = 0;
    for (const auto& [name, node] : ordered) {
      const std::string path = "cluster." + name;
      const int line = line_of(*node);
      if (Status s = check_name(name); !s.ok()) errors.add(line, path, s.message());
      if (cluster_lines.size() == limits::kMaxClusters) {  // this is one more
        errors.add(line, path, "more than " + std::to_string(limits::kMaxClusters) + " clusters");
      }
      const toml::table* t = node->as_table();
      if (t == nullptr) {
        errors.add(line, path, "expected a table [" + path + "]");
        continue;
      }
      ClusterConfig c = d.cluster;
      c.name = name;
      KeyReader keys(Scope::kCluster, path + ".", &errors);
      Target target;
      target.cluster = &c;
      const toml::node* backends = nullptr;
      for (auto&& [k, v] : *t) {
        if (k.str() == "backends") {
          backends = &v;
        } else if (k.str() == "tls") {
          toml_reader::read_cluster_tls(v, path + ".tls", &errors, &c.tls);
          tls_lines.emplace_back(line_of(v), path + ".tls");
        } else {
          keys.apply(k, v, target, {"backends", "tls"});
        }
      }
      // discovery = "etcd" goes with its prefix, and with an [etcd] table to reach it.
      const int discovery_line = keys.line("discovery"), prefix_line = keys.line("etcd-prefix");
      if (c.discovered && prefix_line == 0) {
        errors.add(discovery_line, path + ".etcd-prefix", "required with discovery = \"etcd\"");
      } else if (prefix_line != 0 && !c.discovered) {
        errors.add(prefix_line, path + ".etcd-prefix", "only used with discovery = \"etcd\"");
        c.etcd_prefix.clear();
      } else if (c.discovered && d.config.etcd.endpoints.empty()) {
        errors.add(discovery_line, path + ".discovery", "needs an [etcd] table with endpoints");
      }
      if (backends == nullptr && c.discovered) {
        // Every backend may come from etcd: the cluster starts empty.
      } else if (backends == nullptr) {
        errors.add(line, path, "no backends (backends = [\"ADDR:PORT\", ...])");
      } else if (const toml::array* a = backends->as_array(); a == nullptr || (a->empty() && !c.discovered)) {
        errors.add(line_of(*backends), path + ".backends", "expected an array of one or more backends");
      } else {
        std::map<std::string, size_t> seen;
        for (size_t i = 0; i < a->size(); ++i) {
          const std::string where = path + ".backends[" + std::to_string(i) + "]";
          BackendConfig b;
          if (!read_backend(*a->get(i), where, &errors, &b)) continue;
          // A name is one entry however many addresses it has: its text is its identity.
          const std::string address = b.dns.kind != DnsName::Kind::kNone ? b.text : b.address.to_string();
          if (auto [it, fresh] = seen.emplace(address, i); !fresh) {
            errors.add(line_of(*a->get(i)), where,
                       "the same address as backends[" + std::to_string(it->second) + "] (" + address + ")");
            continue;
          }
          if (++backends_in_all == limits::kMaxBackends + 1) {
            errors.add(line_of(*a->get(i)), where,
                       "more than " + std::to_string(limits::kMaxBackends) + " backends in all clusters together");
          }
          c.backends.push_back(b);
        }
      }
      if (!d.queue_timeout_set && keys.line("queue-timeout") == 0) c.queue_timeout = c.connect_timeout;
      for (const Problem& p : check_cluster(c)) {
        int at = keys.line(p.key);
        std::string key = path + "." + p.key;
        if (p.backend >= 0) {
          at = line_of(*backends->as_array()->get(static_cast<size_t>(p.backend)));
          key = path + ".backends[" + std::to_string(p.backend) + "]." + p.key;
        } else if (at == 0) {
          at = top_line(p.key);  // a default from the top level (or a flag): blame that
          if (at == 0) at = line;
        }
        errors.add(at, key, "invalid value " + p.value + ": " + p.why);
      }
      split_names(&c);
      cluster_lines[name] = line;
      config->clusters.push_back(std::move(c));
    }
  }

  const toml::node* listeners = top.get("listener");
  const toml::array* list = listeners != nullptr ? listeners->as_array() : nullptr;
  if (listeners != nullptr && list == nullptr) {
    errors.add(line_of(*listeners), "listener", "expected [[listener]] tables (an array of tables)");
  } else if (list == nullptr && !cluster_lines.empty()) {
    errors.add(cluster_lines.begin()->second, "listener",
               "no [[listener]] tables: clusters serve no one without a listener");
  }
  std::map<std::string, std::pair<size_t, int>> names, addresses;  // -> (index, line)
  for (size_t i = 0; list != nullptr && i < list->size(); ++i) {
    const std::string path = "listener[" + std::to_string(i) + "]";
    const toml::node& node = *list->get(i);
    const int line = line_of(node);
    const toml::table* t = node.as_table();
    if (t == nullptr) {
      errors.add(line, path, "expected a table");
      continue;
    }
    if (i == limits::kMaxListeners) {
      errors.add(line, path, "more than " + std::to_string(limits::kMaxListeners) + " listeners");
    }
    ListenConfig l = d.listener;
    l.allow = d.config.allow;
    l.deny = d.config.deny;
    l.name = "listener-" + std::to_string(i + 1);
    KeyReader keys(Scope::kListener, path + ".", &errors);
    Target target;
    target.listener = &l;
    const std::vector<std::string> structural = {"address", "name", "cluster", "sni", "sni-default", "tls"};
    int address_line = 0, cluster_line = 0, sni_line = 0, sni_default_line = 0;
    std::vector<std::pair<std::string, int>> written;  // (canonical key, line): udp_config.h's checks
    bool protocol_known = true;
    for (auto&& [k, v] : *t) {
      const std::string key(k.str());
      const std::string at = path + "." + key;
      const int kline = line_of(v);
      const char* canonical = canonical_key(Scope::kListener, key);
      written.emplace_back(canonical != nullptr ? canonical : key, kline);
      ListenProtocol unused;
      if (key == "protocol" && !(v.as_string() && parse_listen_protocol(v.as_string()->get(), &unused))) {
        protocol_known = false;  // its error is enough: the keys are not judged by a guess
      }
      std::string text, why;
      if (key == "address") {
        address_line = -1;  // given, and 0 < address_line once it parses
        if (!get_text(v, at, kline, &errors, &text)) continue;
        if (text.find(',') != std::string::npos) {
          why = "settings go in their own keys (accept-proxy = true, ...)";
        } else if (parse_address(text, &l.address, &why)) {
          address_line = kline;
          continue;
        }
        errors.add(kline, at, "invalid value " + show(v) + ": " + why);
      } else if (key == "name") {
        if (get_text(v, at, kline, &errors, &text)) {
          if (Status s = check_name(text); s.ok()) {
            l.name = text;
          } else {
            errors.add(kline, at, s.message());
          }
        }
      } else if (key == "cluster" || key == "sni-default") {
        (key == "cluster" ? cluster_line : sni_default_line) = kline;
        if (!get_text(v, at, kline, &errors, &text)) continue;
        if (!(key == "sni-default" && text.empty()) && !cluster_lines.count(text)) {
          errors.add(kline, at, "no cluster '" + text + "' (defined: " + names_of(cluster_lines) + ")");
        }
        (key == "cluster" ? l.cluster : l.sni_default) = text;
      } else if (key == "sni") {
        sni_line = kline;
        const toml::array* routes = v.as_array();
        if (routes == nullptr || routes->empty()) {
          errors.add(kline, at, "expected an array of one or more {name = \"SERVER\", cluster = \"NAME\"}");
          continue;
        }
        std::map<std::string, size_t> seen;
        for (size_t r = 0; r < routes->size(); ++r) {
          const std::string rpath = at + "[" + std::to_string(r) + "]";
          const toml::node& route = *routes->get(r);
          const toml::table* rt = route.as_table();
          if (rt == nullptr) {
            errors.add(line_of(route), rpath, "expected {name = \"SERVER\", cluster = \"NAME\"}");
            continue;
          }
          SniRoute sni;
          bool ok = true;
          for (auto&& [rk, rv] : *rt) {
            const std::string rkey(rk.str());
            const std::string rat = rpath + "." + rkey;
            if (rkey != "name" && rkey != "cluster") {
              errors.add(line_of(rv), rat, "unknown key (an SNI route has name and cluster)");
              ok = false;
            } else if (!get_text(rv, rat, line_of(rv), &errors, &text)) {
              ok = false;
            } else if (Status s = rkey == "name" ? parse_sni_pattern(text, &sni.server_name) : Status(); !s.ok()) {
              errors.add(line_of(rv), rat, s.message());
              ok = false;
            } else if (rkey == "cluster" && !cluster_lines.count(text)) {
              errors.add(line_of(rv), rat, "no cluster '" + text + "' (defined: " + names_of(cluster_lines) + ")");
              ok = false;
            } else if (rkey == "cluster") {
              sni.cluster = text;
            }
          }
          if (ok && (sni.server_name.empty() || sni.cluster.empty())) {
            errors.add(line_of(route), rpath, "needs both name and cluster");
            ok = false;
          }
          if (!ok) continue;
          if (auto [it, fresh] = seen.emplace(sni.server_name, r); !fresh) {
            errors.add(line_of(route), rpath + ".name",
                       "'" + sni.server_name + "' is already routed by sni[" + std::to_string(it->second) + "]");
            continue;
          }
          l.sni_routes.push_back(sni);
        }
      } else if (key == "tls") {
        toml_reader::read_listener_tls(v, at, &errors, &l.tls);
        tls_lines.emplace_back(line_of(v), at);
      } else {
        keys.apply(k, v, target, structural);
      }
    }
    // A UDP listener's protocol against its keys and its cluster (udp_config.h).
    if (protocol_known) {
      std::vector<std::string> keys_written;
      for (const auto& [key, kline] : written) keys_written.push_back(key);
      for (const ListenerKeyProblem& p : check_listener_keys(l, keys_written)) {
        const auto at = std::find_if(written.begin(), written.end(), [&](const auto& w) { return w.first == p.key; });
        errors.add(at->second, path + "." + p.key, p.why);
      }
    }
    if (l.protocol == ListenProtocol::kUdp) clear_tcp_defaults(&l);
    for (const ClusterConfig& c : config->clusters) {
      if (c.name != l.cluster) continue;
      for (const std::string& why : check_cluster_for_listener(c, l)) errors.add(cluster_line, path + ".cluster", why);
    }
    if (address_line == 0) errors.add(line, path, "address is required (address = \"ADDR:PORT\")");
    if (cluster_line != 0 && sni_line != 0) {
      errors.add(sni_line, path + ".sni", "a listener has cluster or sni, not both");
    } else if (cluster_line == 0 && sni_line == 0) {
      errors.add(line, path, "needs cluster = \"NAME\" or sni = [{name = \"SERVER\", cluster = \"NAME\"}, ...]");
    }
    if (sni_default_line != 0 && sni_line == 0) {
      errors.add(sni_default_line, path + ".sni-default", "only used with sni");
    }
    if (int at = keys.line("tls-inspect-timeout"); at != 0 && sni_line == 0) {
      errors.add(at, path + ".tls-inspect-timeout", "only used with sni");
    }
    if (int at = keys.line("connection-burst-per-source"); at != 0 && l.connection_rate_per_source.count == 0) {
      errors.add(at, path + ".connection-burst-per-source", "only used with connection-rate-per-source");
    }
    for (const char* key : {"trusted-proxies", "proxy-header-timeout"}) {
      if (int at = keys.line(key); at != 0 && !l.accept_proxy) {
        errors.add(at, path + "." + key, "only used with accept-proxy = true");
      }
    }
    if (int at = keys.line("v6only"); at != 0 && l.v6only && address_line > 0 &&
                                      l.address.family() != AF_INET6) {
      errors.add(at, path + ".v6only", "needs an IPv6 address ([::]:PORT)");
    }
    if (auto [it, fresh] = names.emplace(l.name, std::make_pair(i, line)); !fresh) {
      errors.add(line, path + ".name", "'" + l.name + "' is also the name of listener[" +
                                           std::to_string(it->second.first) + "] (line " +
                                           std::to_string(it->second.second) + ")");
    }
    // Port 0 is a fresh port each time, so two of those do not collide.
    // A TCP and a UDP listener may share an address (DNS serves both on port 53).
    if (address_line > 0 && l.address.port() != 0) {
      const std::string bound = l.address.to_string() + (l.protocol == ListenProtocol::kUdp ? "/udp" : "");
      if (auto [it, fresh] = addresses.emplace(bound, std::make_pair(i, line)); !fresh) {
        errors.add(address_line, path + ".address", l.address.to_string() + " is also the address of listener[" +
                                                        std::to_string(it->second.first) + "] (line " +
                                                        std::to_string(it->second.second) + ")");
      }
    }
    config->listen.push_back(std::move(l));
  }
  // A TLS side decrypts into its recv's own buffer, which must hold a record begun in the last
  // one beside a recv's worth (server/proxy/tls_link.h).
  if (config->buffer_size < kMinTlsBufferSize) {
    for (const auto& [at, key] : tls_lines) {
      errors.add(at, key, "needs buffer-size of at least " + std::to_string(kMinTlsBufferSize) + " (it is " +
                              std::to_string(config->buffer_size) + ")");
    }
  }
  apply_udp_check_defaults(config);
  return errors.take();
}

}  // namespace ringlb
