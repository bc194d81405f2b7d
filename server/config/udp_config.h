// What a UDP listener ([[listener]] with protocol = "udp") asks of the rest of the file: the keys
// its protocol takes, the cluster behind it, QUIC server IDs, and the health checks of a cluster
// only UDP listeners use. The TOML reader (toml_config.cc) calls these and turns each problem
// into "FILE:LINE: KEY: message"; `ringlb check` reports them.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "server/config/config.h"

namespace ringlb {

struct ListenerKeyProblem {
  std::string key;  // as written in the table (a canonical setting name, or sni / sni-default)
  std::string why;
};

// The keys of a [[listener]] table (`written`: the canonical names of the settings it sets, and
// the structural sni and sni-default) that its protocol does not take: a UDP-only key on a TCP
// listener, a TCP-only one (PROXY protocol, SNI, fin-timeout, ...) on a UDP listener, and
// combinations that do not go together (quic-server-id-length without quic, quic with
// per-datagram). In `written`'s order.
std::vector<ListenerKeyProblem> check_listener_keys(const ListenConfig& l, const std::vector<std::string>& written);

// A UDP listener inherits the top level's listener defaults; those that are TCP's alone
// (accept-proxy, trusted-proxies, ...) do not apply to it and are reset.
void clear_tcp_defaults(ListenConfig* l);

// Why cluster `c` cannot serve UDP listener `l` (each message names the backend): a Unix socket
// backend, a send-proxy backend, a quic-server-id whose length is not the listener's
// quic-server-id-length. Empty for a TCP listener.
std::vector<std::string> check_cluster_for_listener(const ClusterConfig& c, const ListenConfig& l);

// Backends of `c` whose quic-server-id cannot be told apart: the same as an earlier backend's, or
// set on a DNS name (whose addresses would all share it). (index into c.backends, why) pairs.
std::vector<std::pair<size_t, std::string>> check_server_ids(const ClusterConfig& c);

// A cluster that only UDP listeners use gets no TCP check by default (a connect to a UDP service
// fails): where no check type is set (check = "udp" is the one to set), its backends are not
// checked. A check type set at the top level, on the cluster or on a backend is kept, and so are
// the checks of a cluster that a TCP listener also uses.
void apply_udp_check_defaults(Config* config);

// Until the UDP data path is plugged into the workers: why `config` cannot be served (a UDP
// listener: it would otherwise be opened as a TCP one), or "" when it can. `ringlb check`
// accepts UDP listeners; serving and reloading refuse them with this.
std::string udp_not_served(const Config& config);

// A UDP listener's idle timeout: its own, else kUdpIdleTimeout (not the global idle-timeout).
inline Millis udp_idle_timeout(const ListenConfig& l) { return l.idle_timeout.value_or(kUdpIdleTimeout); }

}  // namespace ringlb
