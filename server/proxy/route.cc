#include "server/proxy/route.h"

#include <cerrno>

#include "balancer/hash.h"
#include "server/protocol/sni_routes.h"
#include "server/proxy/tls_link.h"

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;

}  // namespace

Step Route::start(Session& s) {
  const ListenerRoute& route = env_.shared.routes[s.listener];
  if (route.sni) {
    static const std::string kNone;
    const size_t cluster = route.sni_routes.match(s.has_server_name ? extras_.server_name(s.id) : kNone);
    if (cluster == protocol::kNoCluster) return Step::close(CloseReason::k_no_route);
    env_.stats.routed(s.listener, cluster).add();
    s.cluster = static_cast<uint16_t>(cluster);
  } else {
    s.cluster = route.cluster;
  }
  s.snap = snapshots_.acquire(s.cluster, env_.now_ns);
  // An originating cluster: its backends are spoken to over TLS, with this worker's context.
  const auto& cluster_tls = snapshots_.policies().cluster_tls;
  if (s.cluster < cluster_tls.size() && cluster_tls[s.cluster]) {
    TlsLink& link = extras_.make_tls(s.id);
    link.origin = cluster_tls[s.cluster]->worker(env_.worker);
    if (counters_.size() <= s.cluster) counters_.resize(s.cluster + 1u, nullptr);
    if (counters_[s.cluster] == nullptr) {
      counters_[s.cluster] = env_.shared.registry->tls->cluster(env_.shared.backends.cluster_name(s.cluster), env_.worker);
    }
    link.cluster_counters = counters_[s.cluster];
  }
  if (s.has_peer || !s.snap->needs_peer_name) return keyed(s);
  io_.peer_name(s, Tag::kRoutePeerName);
  return Step::wait();
}

Step Route::on_completion(Session& s, const Completion& c) {
  if (c.res < 0) return Step::close(c.res == -ENOTCONN ? CloseReason::k_reset : CloseReason::k_error);
  s.has_peer = true;
  return keyed(s);
}

Step Route::keyed(Session& s) {
  const balancer::Snapshot& cluster = *s.snap->snapshot;
  if (cluster.policy == balancer::Policy::kMaglev && s.has_peer) {
    const bool with_port = cluster.hash_key == balancer::HashKey::kAddrPort;
    const sockaddr_in6& peer = s.peer;
    if (peer.sin6_family == AF_INET6) {
      s.key_hash = balancer::hash64(&peer.sin6_addr, sizeof(peer.sin6_addr), with_port ? peer.sin6_port : 0);
    } else {
      const auto& v4 = reinterpret_cast<const sockaddr_in&>(peer);
      s.key_hash = balancer::hash64(&v4.sin_addr, sizeof(v4.sin_addr), with_port ? v4.sin_port : 0);
    }
  }
  return Step::to(Phase::kConnect);
}

}  // namespace ringlb::proxy
