#include "server/proxy/admit.h"

#include <cerrno>

#include "server/limits/shared_source_table.h"
#include "server/proxy/admission.h"

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;

}  // namespace

Step Admit::start(Session& s) {
  const ListenerPolicy& policy = snapshots_.policy(s.listener);
  // One atomic per listener, shared by the workers: max-connections holds exactly however its
  // clients spread over them.
  std::atomic<uint32_t>& active = env_.shared.listener_active[s.listener];
  if (active.fetch_add(1, std::memory_order_relaxed) >= policy.max_connections && policy.max_connections != 0) {
    active.fetch_sub(1, std::memory_order_relaxed);
    return Step::close(CloseReason::k_max_connections);
  }
  s.listener_counted = true;
  if (!needs_peer(s)) return next(s);
  // Multishot accept cannot report the client's address per connection, so ask the socket:
  // getsockopt(SO_PEERNAME) through the socket uring_cmd.
  io_.peer_name(s, Tag::kAdmitPeerName);
  return Step::wait();
}

bool Admit::needs_peer(const Session& s) const {
  const ListenerPolicy& policy = snapshots_.policy(s.listener);
  const ListenerRoute& route = env_.shared.routes[s.listener];
  return !policy.acl.empty() || policy.sources != nullptr || policy.handshakes != nullptr ||
         (route.accept_proxy && !policy.trusted.empty()) || env_.shared.access_log != nullptr;
}

Step Admit::on_completion(Session& s, const Completion& c) {
  // Not connected any more: the client went away before it could be asked.
  if (c.res < 0) return Step::close(c.res == -ENOTCONN ? CloseReason::k_reset : CloseReason::k_error);
  s.has_peer = true;
  return check(s);
}

Step Admit::check(Session& s) {
  const ListenerPolicy& policy = snapshots_.policy(s.listener);
  const sockaddr* peer = reinterpret_cast<const sockaddr*>(&s.peer);
  if (env_.shared.routes[s.listener].accept_proxy && !policy.trusted.empty()) {
    // trusted-proxies: only these sources may say who the client is.
    if (!policy.trusted.allows(peer)) return Step::close(CloseReason::k_untrusted_proxy);
    return next(s);
  }
  const Admitted a = admit_address(policy, peer, env_.now_ns, &s.source_table, &s.source);
  if (!a.ok) return Step::close(a.reason);
  return next(s);
}

Step Admit::next(Session& s) {
  const ListenerRoute& route = env_.shared.routes[s.listener];
  if (!route.accept_proxy && !route.sni && !route.tls) return Step::to(Phase::kRoute);
  if (Step refused = handshake(s); refused.kind == Step::Kind::kClose) return refused;
  if (route.accept_proxy) return Step::to(Phase::kProxyHeader);
  // A terminating listener reads the SNI from its own handshake, not from a peek.
  return Step::to(route.tls ? Phase::kTlsAccept : Phase::kClientHello);
}

Step Admit::handshake(Session& s) {
  const ListenerPolicy& policy = snapshots_.policy(s.listener);
  // Until its header or hello is whole, a client holds a connection and sends nothing useful:
  // bounded, so that one source (or a crowd) cannot hold every connection of the listener.
  std::atomic<uint32_t>& count = env_.shared.listener_handshakes[s.listener];
  if (count.fetch_add(1, std::memory_order_relaxed) >= policy.max_handshakes && policy.max_handshakes != 0) {
    count.fetch_sub(1, std::memory_order_relaxed);
    return Step::close(CloseReason::k_handshakes);
  }
  s.handshaking = true;  // released by the driver when the session routes, or closes
  // A trusted proxy sends its header at once and carries many clients: not bounded per source.
  const bool trusted = env_.shared.routes[s.listener].accept_proxy && !policy.trusted.empty();
  if (policy.handshakes != nullptr && s.has_peer && !trusted) {
    // The socket's own peer, even where a PROXY header will name another client: the sender is
    // who holds the connection open.
    const sources::SourceKey key =
        sources::source_key(reinterpret_cast<const sockaddr*>(&s.peer), policy.source_ipv6_prefix);
    if (policy.handshakes->acquire(key, env_.now_ns) != sources::Admission::kAdmitted) {
      return Step::close(CloseReason::k_source_handshakes);
    }
    s.handshake_table = policy.handshakes;
    s.handshake_source = key;
  }
  return Step::wait();
}

}  // namespace ringlb::proxy
