#include "server/config/settings.h"

#include <algorithm>
#include <thread>

#include "server/config/udp_config.h"
#include "server/protocol/quic.h"

namespace ringlb {
namespace {

// Where an entry may be written. kCluster and kListenerDefault keys may also be written at the
// top level, where they set the defaults.
// kClusterOnly keys have no meaningful default (a prefix is one cluster's), so not at the top.
enum class Level { kGlobal, kCluster, kClusterOnly, kListenerDefault, kListener, kBackend, kEtcd, kResolvers };

struct Entry {
  Level level;
  const char* name;
  const char* alias;  // the same setting under a second name, or nullptr
  bool (*apply)(const Value& v, const Target& t, std::string* why);
};

template <typename T>
bool set_uint(const Value& v, uint64_t min, uint64_t max, T* field, std::string* why) {
  uint64_t n = 0;
  if (!v.get_uint(min, max, &n, why)) return false;
  *field = static_cast<T>(n);
  return true;
}

bool get_duration(const Value& v, bool above_zero, Millis* out, std::string* why) {
  std::string text;
  if (!v.get_string(&text, "a duration such as \"5s\"", why) || !parse_duration(text, out, why)) {
    return false;
  }
  if (above_zero && out->count() == 0) {
    *why = "must be above zero";
    return false;
  }
  return true;
}

bool set_duration(const Value& v, bool above_zero, Millis* field, std::string* why) {
  return get_duration(v, above_zero, field, why);
}

bool set_optional_duration(const Value& v, bool above_zero, std::optional<Millis>* field,
                           std::string* why) {
  Millis d{};
  if (!get_duration(v, above_zero, &d, why)) return false;
  *field = d;
  return true;
}

bool set_bool(const Value& v, bool* field, std::string* why) { return v.get_bool(field, why); }

bool set_cidrs(const Value& v, std::vector<Cidr>* field, std::string* why) {
  std::vector<std::string> texts;
  if (!v.get_strings(&texts, why)) return false;
  std::vector<Cidr> list;
  for (const std::string& text : texts) {
    Cidr cidr;
    std::string error;
    if (!parse_cidr(text, &cidr, &error)) {
      *why = "'" + text + "': " + error;
      return false;
    }
    list.push_back(cidr);
  }
  *field = list;
  return true;
}

bool set_path(const Value& v, const char* what, std::string* field, std::string* why) {
  std::string text;
  if (!v.get_string(&text, what, why)) return false;
  if (text.empty()) {
    *why = std::string("needs ") + what;
    return false;
  }
  *field = text;
  return true;
}

// A Unix socket's path must fit sockaddr_un, or bind and connect fail only once running.
bool check_unix_path(const std::string& path, std::string* why) {
  if (path.size() <= limits::kMaxUnixPath) return true;
  *why = "a Unix socket path is at most " + std::to_string(limits::kMaxUnixPath) + " bytes (this one has " +
         std::to_string(path.size()) + ")";
  return false;
}

bool set_scheduling(const Value& v, bool* batch, std::string* why) {
  std::string text;
  if (!v.get_string(&text, "batch or normal", why)) return false;
  if (text != "batch" && text != "normal") {
    *why = "expected batch or normal";
    return false;
  }
  *batch = text == "batch";
  return true;
}

// A check-* key of a cluster (or the top level) or a backend: numbers here, strings validated
// by health::set_check_text (which names the bad value: an unknown type, a bad status range...).
bool set_check(const Value& v, std::string_view key, health::CheckSettings* s, std::string* why) {
  uint64_t n = 0;
  if (key == "check-port") {
    if (!v.get_uint(1, 65535, &n, why)) return false;
    s->port = static_cast<uint16_t>(n);
    return true;
  }
  if (key == "check-expect-within") {
    if (!v.get_uint(1, health::kMaxReplyWindow, &n, why)) return false;
    s->expect_within = static_cast<uint32_t>(n);
    return true;
  }
  std::string text;
  return v.get_string(&text, "a string", why) && health::set_check_text(key, text, s, why);
}

// An etcd endpoint: http:// or https://, a host and a port, nothing after (the paths are ours).
bool valid_endpoint(const std::string& url, std::string* why) {
  const size_t scheme = url.find("://");
  const std::string kind = scheme == std::string::npos ? "" : url.substr(0, scheme);
  const std::string rest = scheme == std::string::npos ? "" : url.substr(scheme + 3);
  const size_t colon = rest.rfind(':');
  uint64_t port = 0;
  if ((kind != "http" && kind != "https") || colon == std::string::npos || colon == 0 ||
      !parse_uint(rest.substr(colon + 1), 1, 65535, &port) || rest.find('/') != std::string::npos) {
    *why = "'" + url + "': expected http://HOST:PORT or https://HOST:PORT";
    return false;
  }
  return true;
}

constexpr uint64_t kMaxConns = limits::kMaxConnections;
constexpr uint64_t kMaxRf = limits::kMaxRiseFall;

// A const table of every setting. Lambdas rather than member pointers: several settings parse
// text into something other than their field's type.
const Entry kEntries[] = {
    // Process-wide: top level and flags only.
    {Level::kGlobal, "workers", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 1, limits::kMaxWorkers, &t.top->config.workers, why); }},
    {Level::kGlobal, "buffer-size", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 1024, 1 << 20, &t.top->config.buffer_size, why); }},
    {Level::kGlobal, "buffers", "buffers-per-worker", [](const Value& v, const Target& t, std::string* why) {
       unsigned n = 0;
       if (!set_uint(v, 8, 32768, &n, why)) return false;
       if ((n & (n - 1)) != 0) {
         *why = "must be a power of two";
         return false;
       }
       t.top->config.buffers_per_worker = n;
       return true; }},
    {Level::kGlobal, "backlog", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 1, 65535, &t.top->config.backlog, why); }},
    {Level::kGlobal, "max-connections", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 1, kMaxConns, &t.top->config.max_connections, why); }},
    {Level::kGlobal, "metrics-listen", nullptr, [](const Value& v, const Target& t, std::string* why) {
       std::string text;
       if (!v.get_string(&text, "ADDR:PORT or none", why)) return false;
       Config& c = t.top->config;
       if (text == "none") {
         c.metrics_enabled = false;
         return true;
       }
       if (!parse_address(text, &c.metrics_listen, why)) {
         *why += " (or none)";
         return false;
       }
       c.metrics_enabled = true;
       return true; }},
    {Level::kGlobal, "metrics", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_bool(v, &t.top->config.metrics_enabled, why); }},
    {Level::kGlobal, "access-log", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_path(v, "a PATH (or - for standard output)", &t.top->config.access_log, why); }},
    {Level::kGlobal, "access-log-format", nullptr, [](const Value& v, const Target& t, std::string* why) {
       std::string text;
       if (!v.get_string(&text, "logfmt or json", why)) return false;
       if (!parse_access_log_format(text, &t.top->config.access_log_format)) {
         *why = "expected logfmt or json";
         return false;
       }
       return true; }},
    {Level::kGlobal, "log-level", nullptr, [](const Value& v, const Target& t, std::string* why) {
       std::string text;
       if (!v.get_string(&text, "error, warning, info or debug", why)) return false;
       if (!parse_log_level(text, &t.top->config.log_level)) {
         *why = "expected error, warning, info or debug";
         return false;
       }
       return true; }},
    {Level::kGlobal, "recv", nullptr, [](const Value& v, const Target& t, std::string* why) {
       std::string text;
       if (!v.get_string(&text, "multishot or single", why)) return false;
       if (text != "multishot" && text != "single") {
         *why = "expected multishot or single";
         return false;
       }
       t.top->config.recv_multishot = text == "multishot";
       return true; }},
    {Level::kGlobal, "flow-buffers", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 1, 64, &t.top->config.flow_buffers, why); }},
    {Level::kGlobal, "control-socket", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_path(v, "a PATH", &t.top->config.control_socket, why) &&
              check_unix_path(t.top->config.control_socket, why); }},
    {Level::kGlobal, "cpu-affinity", nullptr, [](const Value& v, const Target& t, std::string* why) {
       std::string text;
       return v.get_string(&text, "none, auto or \"CPU[,CPU...]\"", why) &&
              parse_cpu_affinity(text, &t.top->config.cpus, why); }},
    {Level::kGlobal, "acceptor-scheduling", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_scheduling(v, &t.top->config.acceptor_batch, why); }},
    {Level::kGlobal, "iowq-scheduling", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_scheduling(v, &t.top->config.iowq_batch, why); }},
    {Level::kGlobal, "drain-timeout", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, false, &t.top->config.drain_timeout, why); }},
    {Level::kGlobal, "idle-timeout", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, false, &t.top->config.idle_timeout, why); }},
    {Level::kGlobal, "fin-timeout", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, true, &t.top->config.fin_timeout, why); }},
    {Level::kGlobal, "max-connection-duration", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, false, &t.top->config.max_connection_duration, why); }},
    {Level::kGlobal, "allow", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_cidrs(v, &t.top->config.allow, why); }},
    {Level::kGlobal, "deny", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_cidrs(v, &t.top->config.deny, why); }},

    // A cluster's, or at the top level every cluster's default.
    {Level::kCluster, "balance", "policy", [](const Value& v, const Target& t, std::string* why) {
       std::string text;
       if (!v.get_string(&text, "roundrobin, leastconn, random2 or maglev", why)) return false;
       if (!balancer::parse_policy(text, &t.cluster->policy)) {
         *why = "expected roundrobin, leastconn, random2 or maglev";
         return false;
       }
       return true; }},
    {Level::kCluster, "hash-key", nullptr, [](const Value& v, const Target& t, std::string* why) {
       std::string text;
       return v.get_string(&text, "addr or addr,port", why) && parse_hash_key(text, &t.cluster->hash_key, why); }},
    {Level::kCluster, "maglev-table-size", "maglev-size", [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 2, 10'000'019, &t.cluster->maglev_size, why); }},
    {Level::kCluster, "health-interval", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, false, &t.cluster->health.interval, why); }},
    {Level::kCluster, "health-timeout", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, false, &t.cluster->health.timeout, why); }},
    {Level::kCluster, "health-rise", "rise", [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 1, kMaxRf, &t.cluster->health.rise, why); }},
    {Level::kCluster, "health-fall", "fall", [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 1, kMaxRf, &t.cluster->health.fall, why); }},
    {Level::kCluster, "connect-timeout", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, true, &t.cluster->connect_timeout, why); }},
    {Level::kCluster, "connect-attempts", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 1, limits::kMaxConnectAttempts, &t.cluster->connect_attempts, why); }},
    {Level::kClusterOnly, "discovery", nullptr, [](const Value& v, const Target& t, std::string* why) {
       std::string text;
       if (!v.get_string(&text, "etcd or none", why)) return false;
       if (text != "etcd" && text != "none") {
         *why = "expected etcd or none";
         return false;
       }
       t.cluster->discovered = text == "etcd";
       return true; }},
    {Level::kClusterOnly, "etcd-prefix", nullptr, [](const Value& v, const Target& t, std::string* why) {
       std::string text;
       if (!v.get_string(&text, "a key prefix such as \"/ringlb/web/\"", why)) return false;
       // A prefix that is not a whole "directory" would also take /ringlb/web2/ for /ringlb/web.
       if (text.empty() || text.back() != '/') {
         *why = "must end with '/' (\"/ringlb/web/\")";
         return false;
       }
       t.cluster->etcd_prefix = text;
       return true; }},
    {Level::kCluster, "queue-timeout", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, false, &t.cluster->queue_timeout, why); }},
    {Level::kCluster, "check", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check", &t.cluster->health.check, why); }},
    {Level::kCluster, "check-port", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-port", &t.cluster->health.check, why); }},
    {Level::kCluster, "check-method", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-method", &t.cluster->health.check, why); }},
    {Level::kCluster, "check-path", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-path", &t.cluster->health.check, why); }},
    {Level::kCluster, "check-host", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-host", &t.cluster->health.check, why); }},
    {Level::kCluster, "check-status", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-status", &t.cluster->health.check, why); }},
    {Level::kCluster, "check-body", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-body", &t.cluster->health.check, why); }},
    {Level::kCluster, "check-send", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-send", &t.cluster->health.check, why); }},
    {Level::kCluster, "check-expect", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-expect", &t.cluster->health.check, why); }},
    {Level::kCluster, "check-expect-within", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-expect-within", &t.cluster->health.check, why); }},
    {Level::kCluster, "check-sni", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-sni", &t.cluster->health.check, why); }},
    {Level::kCluster, "slow-start", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, false, &t.cluster->health.slow_start, why); }},
    // DNS names: re-resolved at their TTL, within these bounds (server/discovery/dns_resolver).
    {Level::kCluster, "resolve-min-interval", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, true, &t.cluster->resolve_min_interval, why); }},
    {Level::kCluster, "resolve-max-interval", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, true, &t.cluster->resolve_max_interval, why); }},
    {Level::kCluster, "resolve-hold", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, false, &t.cluster->resolve_hold, why); }},

    // A listener's, or at the top level every listener's default.
    {Level::kListenerDefault, "accept-proxy", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_bool(v, &t.listener->accept_proxy, why); }},
    {Level::kListenerDefault, "trusted-proxies", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_cidrs(v, &t.listener->trusted_proxies, why); }},
    {Level::kListenerDefault, "proxy-header-timeout", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, true, &t.listener->proxy_header_timeout, why); }},
    {Level::kListenerDefault, "max-connections-per-source", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 0, kMaxConns, &t.listener->max_connections_per_source, why); }},
    {Level::kListenerDefault, "connection-rate-per-source", nullptr, [](const Value& v, const Target& t, std::string* why) {
       std::string text;
       return v.get_string(&text, "a rate such as \"10/s\"", why) &&
              parse_source_rate(text, &t.listener->connection_rate_per_source, why); }},
    {Level::kListenerDefault, "connection-burst-per-source", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 0, limits::kMaxSourceRate, &t.listener->connection_burst_per_source, why); }},
    {Level::kListenerDefault, "source-table-size", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 1, limits::kMaxSourceTableSize, &t.listener->source_table_size, why); }},
    {Level::kListenerDefault, "tls-inspect-timeout", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, true, &t.listener->tls_inspect_timeout, why); }},

    // A listener's own (the top-level keys of the same names are the global settings).
    {Level::kListener, "v6only", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_bool(v, &t.listener->v6only, why); }},
    {Level::kListener, "allow", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_cidrs(v, &t.listener->allow, why); }},
    {Level::kListener, "deny", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_cidrs(v, &t.listener->deny, why); }},
    {Level::kListener, "max-connections", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 0, kMaxConns, &t.listener->max_connections, why); }},
    {Level::kListener, "idle-timeout", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_optional_duration(v, false, &t.listener->idle_timeout, why); }},
    {Level::kListener, "fin-timeout", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_optional_duration(v, true, &t.listener->fin_timeout, why); }},
    {Level::kListener, "max-connection-duration", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_optional_duration(v, false, &t.listener->max_connection_duration, why); }},
    // A UDP listener's (udp_listen.h); udp_config.h refuses them on a TCP listener.
    {Level::kListener, "protocol", nullptr, [](const Value& v, const Target& t, std::string* why) {
       std::string text;
       if (!v.get_string(&text, "tcp or udp", why)) return false;
       if (!parse_listen_protocol(text, &t.listener->protocol)) {
         *why = "expected tcp or udp";
         return false;
       }
       return true; }},
    {Level::kListener, "responses", nullptr, [](const Value& v, const Target& t, std::string* why) {
       uint32_t n = 0;
       if (!set_uint(v, 0, limits::kMaxResponses, &n, why)) return false;
       t.listener->udp.responses = n;
       return true; }},
    {Level::kListener, "max-flows", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 1, limits::kMaxFlows, &t.listener->udp.max_flows, why); }},
    {Level::kListener, "per-datagram", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_bool(v, &t.listener->udp.per_datagram, why); }},
    {Level::kListener, "quic", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_bool(v, &t.listener->udp.quic, why); }},
    {Level::kListener, "quic-server-id-length", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 1, limits::kMaxQuicServerIdLength, &t.listener->udp.quic_server_id_length, why); }},

    // A backend table's (the same settings as parse_backend's ",key=value" suffixes).
    {Level::kBackend, "weight", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 0, limits::kMaxWeight, &t.backend->weight, why); }},
    {Level::kBackend, "max-connections", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 0, kMaxConns, &t.backend->max_connections, why); }},
    {Level::kBackend, "backup", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_bool(v, &t.backend->backup, why); }},
    {Level::kBackend, "send-proxy", nullptr, [](const Value& v, const Target& t, std::string* why) {
       std::string text;
       if (!v.get_string(&text, "\"v1\", \"v2\" or \"none\"", why)) return false;
       if (text != "v1" && text != "v2" && text != "none") {
         *why = "expected \"v1\", \"v2\" or \"none\"";
         return false;
       }
       t.backend->proxy_protocol = text == "v1"   ? ProxyProtocol::kV1
                                   : text == "v2" ? ProxyProtocol::kV2
                                                  : ProxyProtocol::kNone;
       return true; }},
    {Level::kBackend, "health-interval", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_optional_duration(v, false, &t.backend->health_interval, why); }},
    {Level::kBackend, "health-timeout", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_optional_duration(v, false, &t.backend->health_timeout, why); }},
    {Level::kBackend, "rise", "health-rise", [](const Value& v, const Target& t, std::string* why) {
       uint32_t n = 0;
       if (!set_uint(v, 1, kMaxRf, &n, why)) return false;
       t.backend->health_rise = n;
       return true; }},
    {Level::kBackend, "fall", "health-fall", [](const Value& v, const Target& t, std::string* why) {
       uint32_t n = 0;
       if (!set_uint(v, 1, kMaxRf, &n, why)) return false;
       t.backend->health_fall = n;
       return true; }},
    {Level::kBackend, "check", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check", &t.backend->check, why); }},
    {Level::kBackend, "check-port", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-port", &t.backend->check, why); }},
    {Level::kBackend, "check-method", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-method", &t.backend->check, why); }},
    {Level::kBackend, "check-path", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-path", &t.backend->check, why); }},
    {Level::kBackend, "check-host", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-host", &t.backend->check, why); }},
    {Level::kBackend, "check-status", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-status", &t.backend->check, why); }},
    {Level::kBackend, "check-body", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-body", &t.backend->check, why); }},
    {Level::kBackend, "check-send", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-send", &t.backend->check, why); }},
    {Level::kBackend, "check-expect", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-expect", &t.backend->check, why); }},
    {Level::kBackend, "check-expect-within", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-expect-within", &t.backend->check, why); }},
    {Level::kBackend, "check-sni", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_check(v, "check-sni", &t.backend->check, why); }},
    {Level::kBackend, "slow-start", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_optional_duration(v, false, &t.backend->slow_start, why); }},
    {Level::kBackend, "quic-server-id", nullptr, [](const Value& v, const Target& t, std::string* why) {
       std::string text;
       if (!v.get_string(&text, "a server ID such as \"0x0001\"", why)) return false;
       const Status s = quic::parse_server_id(text, &t.backend->quic_server_id);
       *why = s.message();
       return s.ok(); }},

    // The [etcd] table.
    {Level::kEtcd, "endpoints", nullptr, [](const Value& v, const Target& t, std::string* why) {
       std::vector<std::string> urls;
       if (!v.get_strings(&urls, why)) return false;
       if (urls.empty()) {
         *why = "expected one or more URLs";
         return false;
       }
       for (const std::string& u : urls) {
         if (!valid_endpoint(u, why)) return false;
       }
       t.etcd->endpoints = urls;
       return true; }},
    {Level::kEtcd, "ca-file", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_path(v, "a PATH", &t.etcd->ca_file, why); }},
    {Level::kEtcd, "cert-file", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_path(v, "a PATH", &t.etcd->cert_file, why); }},
    {Level::kEtcd, "key-file", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_path(v, "a PATH", &t.etcd->key_file, why); }},
    {Level::kEtcd, "user", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_path(v, "a user name", &t.etcd->user, why); }},
    {Level::kEtcd, "password", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return v.get_string(&t.etcd->password, "a string", why); }},
    {Level::kEtcd, "dial-timeout", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, true, &t.etcd->dial_timeout, why); }},
    {Level::kEtcd, "request-timeout", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, true, &t.etcd->request_timeout, why); }},
    {Level::kEtcd, "reconnect-min", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, true, &t.etcd->reconnect_min, why); }},
    {Level::kEtcd, "reconnect-max", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_duration(v, true, &t.etcd->reconnect_max, why); }},
    // The [resolvers] table (top-level file only).
    {Level::kResolvers, "nameservers", nullptr, [](const Value& v, const Target& t, std::string* why) {
       std::vector<std::string> texts;
       if (!v.get_strings(&texts, why)) return false;
       std::vector<Address> list;
       for (const std::string& text : texts) {
         Address a;
         std::string error;
         // A bare IP means port 53 (resolv.conf's form); parse_address wants one.
         const bool v6 = text.find(':') != text.rfind(':') && text.front() != '[';
         const bool bare = v6 || text.find(':') == std::string::npos;
         const std::string full = !bare ? text : v6 ? "[" + text + "]:53" : text + ":53";
         if (!parse_address(full, &a, &error) || a.port() == 0) {
           *why = "'" + text + "': expected IP or IP:PORT ([IPv6]:PORT)";
           return false;
         }
         list.push_back(a);
       }
       t.top->config.resolvers.nameservers = list;
       return true; }},
    {Level::kResolvers, "timeout", nullptr, [](const Value& v, const Target& t, std::string* why) {
       Millis d{};
       if (!get_duration(v, true, &d, why)) return false;
       if (d > Millis{60000}) {
         *why = "must be at most 60s";
         return false;
       }
       t.top->config.resolvers.timeout = d;
       return true; }},
    {Level::kResolvers, "attempts", nullptr, [](const Value& v, const Target& t, std::string* why) {
       return set_uint(v, 1, 10, &t.top->config.resolvers.attempts, why); }},
};

bool in_scope(Level level, Scope scope) {
  switch (scope) {
    case Scope::kTop:
      return level == Level::kGlobal || level == Level::kCluster || level == Level::kListenerDefault;
    case Scope::kCluster:
      return level == Level::kCluster || level == Level::kClusterOnly;
    case Scope::kListener:
      return level == Level::kListenerDefault || level == Level::kListener;
    case Scope::kBackend:
      return level == Level::kBackend;
    case Scope::kEtcd:
      return level == Level::kEtcd;
    case Scope::kResolvers:
      return level == Level::kResolvers;
  }
  return false;
}

const Entry* find(Scope scope, std::string_view key) {
  for (const Entry& e : kEntries) {
    if (in_scope(e.level, scope) && (key == e.name || (e.alias != nullptr && key == e.alias))) return &e;
  }
  return nullptr;
}

}  // namespace

bool FlagValue::get_uint(uint64_t min, uint64_t max, uint64_t* out, std::string* why) const {
  if (!parse_uint(text(), min, max, out)) {
    *why = "expected a whole number from " + std::to_string(min) + " to " + std::to_string(max);
    return false;
  }
  return true;
}

bool FlagValue::get_bool(bool* out, std::string* why) const {
  if (text() != "true" && text() != "false") {
    *why = "expected true or false";
    return false;
  }
  *out = text() == "true";
  return true;
}

bool FlagValue::get_string(std::string* out, const char*, std::string*) const {
  *out = text();
  return true;
}

bool FlagValue::get_strings(std::vector<std::string>* out, std::string*) const {
  *out = texts_;
  return true;
}

Defaults make_defaults() {
  Defaults d;
  d.config.workers = std::max(1u, std::thread::hardware_concurrency());
  std::string unused;
  parse_address("127.0.0.1:9090", &d.config.metrics_listen, &unused);
  return d;
}

const char* canonical_key(Scope scope, std::string_view key) {
  const Entry* e = find(scope, key);
  return e != nullptr ? e->name : nullptr;
}

std::vector<std::string> keys_of(Scope scope) {
  std::vector<std::string> keys;
  for (const Entry& e : kEntries) {
    if (in_scope(e.level, scope)) keys.push_back(e.name);
  }
  return keys;
}

bool apply_setting(Scope scope, std::string_view key, const Value& value, const Target& target,
                   std::string* why) {
  const Entry* e = find(scope, key);
  if (e == nullptr) {
    *why = "unknown key";
    return false;
  }
  Target t = target;
  if (scope == Scope::kTop || scope == Scope::kResolvers) {
    t.cluster = &target.top->cluster;
    t.listener = &target.top->listener;
  }
  if (!e->apply(value, t, why)) return false;
  if (scope == Scope::kTop && std::string_view(e->name) == "queue-timeout") {
    target.top->queue_timeout_set = true;
  }
  return true;
}

std::vector<Problem> check_cluster(const ClusterConfig& c) {
  std::vector<Problem> problems;
  if (c.policy == balancer::Policy::kMaglev && !balancer::is_prime(c.maglev_size)) {
    problems.push_back({-1, "maglev-table-size", std::to_string(c.maglev_size), "must be prime (65537 is)"});
  }
  if (c.resolve_min_interval > c.resolve_max_interval) {
    problems.push_back({-1, "resolve-max-interval", std::to_string(c.resolve_max_interval.count()) + "ms",
                        "must not be below resolve-min-interval (" +
                            std::to_string(c.resolve_min_interval.count()) + "ms)"});
  }
  if (c.health.interval.count() > 0 && c.health.timeout.count() == 0) {
    problems.push_back({-1, "health-timeout", "0ms", "must be above zero"});
  }
  for (const auto& [i, why] : check_server_ids(c)) {
    problems.push_back({static_cast<int>(i), "quic-server-id", quic::format_server_id(c.backends[i].quic_server_id), why});
  }
  for (size_t i = 0; i < c.backends.size(); ++i) {
    const BackendConfig& b = c.backends[i];
    const Millis interval = b.health_interval.value_or(c.health.interval);
    const Millis timeout = b.health_timeout.value_or(c.health.timeout);
    if (interval.count() > 0 && timeout.count() == 0 && (b.health_interval || b.health_timeout)) {
      problems.push_back({static_cast<int>(i), "health-timeout", "0ms",
                          "must be above zero while health checks run"});
    }
    // The check as this backend runs it; blamed on the backend if it set any check key.
    const health::CheckSettings own = b.check;
    const bool overrides = own.type || own.port || own.method || own.path || own.host || own.body ||
                           own.send || own.expect || own.sni || own.status || own.expect_within;
    if (auto p = health::validate(c.health.check.overlaid(own).resolve())) {
      const int at = overrides ? static_cast<int>(i) : -1;
      const bool seen = std::any_of(problems.begin(), problems.end(),
                                    [&](const Problem& q) { return q.backend == at && std::string_view(q.key) == p->key; });
      if (!seen) problems.push_back({at, p->key, p->value.empty() ? "(unset)" : "\"" + p->value + "\"", p->why});
    }
  }
  return problems;
}

}  // namespace ringlb
