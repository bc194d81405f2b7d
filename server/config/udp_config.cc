#include "server/config/udp_config.h"

#include <algorithm>
#include <map>
#include <string_view>

#include "server/protocol/quic.h"

namespace ringlb {
namespace {

struct KeyRule {
  const char* key;
  const char* why;
};

// What a UDP listener refuses, and why (each key is a TCP stream's).
constexpr KeyRule kTcpOnly[] = {
    {"accept-proxy", "the PROXY protocol header starts a TCP stream: not for a UDP listener"},
    {"trusted-proxies", "the PROXY protocol header starts a TCP stream: not for a UDP listener"},
    {"proxy-header-timeout", "the PROXY protocol header starts a TCP stream: not for a UDP listener"},
    {"sni", "SNI routing reads a TLS ClientHello from a TCP stream: not for a UDP listener (for QUIC: quic = true)"},
    {"sni-default", "SNI routing reads a TLS ClientHello from a TCP stream: not for a UDP listener"},
    {"tls-inspect-timeout", "SNI routing reads a TLS ClientHello from a TCP stream: not for a UDP listener"},
    {"fin-timeout", "UDP has no FIN: a flow ends by idle-timeout (and responses)"},
    {"max-connection-duration", "not for a UDP listener: a flow ends by idle-timeout, responses or max-flows"},
    {"max-connections", "a UDP listener has flows, bounded by max-flows"},
    {"download-rate", "bandwidth limits hold a TCP stream's recvs: not for a UDP listener"},
    {"upload-rate", "bandwidth limits hold a TCP stream's recvs: not for a UDP listener"},
};

constexpr const char* kUdpOnly[] = {"responses", "max-flows", "per-datagram", "quic", "quic-server-id-length"};

bool uses(const ListenConfig& l, const std::string& cluster) {
  if (l.cluster == cluster || l.sni_default == cluster) return true;
  return std::any_of(l.sni_routes.begin(), l.sni_routes.end(), [&](const SniRoute& r) { return r.cluster == cluster; });
}

}  // namespace

std::vector<ListenerKeyProblem> check_listener_keys(const ListenConfig& l, const std::vector<std::string>& written) {
  std::vector<ListenerKeyProblem> problems;
  const bool udp = l.protocol == ListenProtocol::kUdp;
  const auto has = [&](std::string_view key) { return std::find(written.begin(), written.end(), key) != written.end(); };
  for (const std::string& key : written) {
    if (!udp) {
      if (std::find(std::begin(kUdpOnly), std::end(kUdpOnly), key) != std::end(kUdpOnly)) {
        problems.push_back({key, "only for a UDP listener (protocol = \"udp\")"});
      }
      continue;
    }
    for (const KeyRule& rule : kTcpOnly) {
      if (key == rule.key) problems.push_back({key, rule.why});
    }
    if (key == "quic-server-id-length" && !l.udp.quic) problems.push_back({key, "only used with quic = true"});
    if (key == "per-datagram" && l.udp.per_datagram && l.udp.quic && has("quic")) {
      problems.push_back({key, "per-datagram and quic = true exclude each other: QUIC keeps each connection on its "
                               "backend by its connection ID"});
    }
  }
  return problems;
}

void clear_tcp_defaults(ListenConfig* l) {
  const ListenConfig tcp;
  l->accept_proxy = tcp.accept_proxy;
  l->trusted_proxies = tcp.trusted_proxies;
  l->proxy_header_timeout = tcp.proxy_header_timeout;
  l->tls_inspect_timeout = tcp.tls_inspect_timeout;
  l->download_rate = tcp.download_rate;
  l->upload_rate = tcp.upload_rate;
}

std::vector<std::string> check_cluster_for_listener(const ClusterConfig& c, const ListenConfig& l) {
  std::vector<std::string> problems;
  if (l.protocol != ListenProtocol::kUdp) return problems;
  const std::string cluster = "cluster '" + c.name + "'";
  for (size_t i = 0; i < c.backends.size(); ++i) {
    const BackendConfig& b = c.backends[i];
    const std::string who = cluster + " backends[" + std::to_string(i) + "] (" + b.text + ")";
    if (b.dns.kind == DnsName::Kind::kNone && b.address.family() == AF_UNIX) {
      problems.push_back(who + " is a Unix socket: a UDP listener's backends are IP:PORT");
    }
    if (b.proxy_protocol != ProxyProtocol::kNone) {
      problems.push_back(who + " has send-proxy: the PROXY protocol is not sent over UDP");
    }
    if (l.udp.quic && !b.quic_server_id.empty() && b.quic_server_id.size() != l.udp.quic_server_id_length) {
      const size_t n = b.quic_server_id.size();
      problems.push_back(who + " has quic-server-id " + quic::format_server_id(b.quic_server_id) + ", " +
                         std::to_string(n) + (n == 1 ? " byte" : " bytes") +
                         "; this listener's quic-server-id-length is " + std::to_string(l.udp.quic_server_id_length));
    }
  }
  return problems;
}

std::vector<std::pair<size_t, std::string>> check_server_ids(const ClusterConfig& c) {
  std::vector<std::pair<size_t, std::string>> problems;
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < c.backends.size(); ++i) {
    const BackendConfig& b = c.backends[i];
    if (b.quic_server_id.empty()) continue;
    if (b.dns.kind != DnsName::Kind::kNone) {
      problems.push_back({i, "a DNS name's addresses would all have this server ID: give it to IP:PORT backends"});
      continue;
    }
    if (auto [it, fresh] = seen.emplace(b.quic_server_id, i); !fresh) {
      problems.push_back({i, "the same as backends[" + std::to_string(it->second) + "]'s: a server ID names one backend"});
    }
  }
  return problems;
}

void apply_udp_check_defaults(Config* config) {
  for (ClusterConfig& c : config->clusters) {
    bool udp = false, tcp = false;
    for (const ListenConfig& l : config->listen) {
      if (uses(l, c.name)) (l.protocol == ListenProtocol::kUdp ? udp : tcp) = true;
    }
    if (!udp || tcp || c.health.check.type) continue;
    // Backends that set a check type of their own keep being checked, every cluster interval.
    const Millis interval = c.health.interval;
    c.health.interval = Millis{0};
    for (std::vector<BackendConfig>* list : {&c.backends, &c.names}) {
      for (BackendConfig& b : *list) {
        if (b.check.type) {
          if (!b.health_interval) b.health_interval = interval;
        } else {
          b.health_interval = Millis{0};
        }
      }
    }
  }
}

std::string udp_not_served(const Config& config) {
  for (const ListenConfig& l : config.listen) {
    if (l.protocol == ListenProtocol::kUdp) {
      return "listener '" + l.name + "': protocol = \"udp\" is not served yet (ringlb check accepts it)";
    }
  }
  return {};
}

}  // namespace ringlb
