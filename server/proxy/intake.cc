#include "server/proxy/intake.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "balancer/hash.h"
#include "server/base/clock.h"
#include "server/proxy/lifecycle.h"
#include "server/proxy/pump.h"
#include "server/limits/shared_source_table.h"
#include "server/proxy/sni_inspector.h"
#include "server/proxy/snapshot_cache.h"
#include "server/proxy/upstream.h"
#include "server/uring/compat.h"
#include "server/worker/context.h"

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;

}  // namespace

void Intake::on_handoff(int res, uint32_t listener, uint32_t stamp_us) {
  if (res < 0) return;  // nothing arrived; the acceptor counted its own side
  if (ctx_.config.metrics_enabled) {
    ctx_.stats.handoff_latency.observe_ns(elapsed_ns_since(stamp_us, ctx_.now_ns));
  }
  ctx_.stats.received.add();
  ctx_.stats.open_slots.add();
  ctx_.snapshots->refresh_policies();  // a reload's new limits apply from its next client on
  // While draining too: the acceptor took this client before it stopped accepting, and it is
  // served within the drain deadline like the others.
  const int opened = ctx_.lifecycle->open(res, static_cast<uint16_t>(listener), stamp_us);
  if (opened < 0) {
    ctx_.stats.close(CloseReason::k_max_connections).add();
    return ctx_.close_slot(res);
  }
  const uint32_t id = static_cast<uint32_t>(opened);
  const ListenerPolicy& policy = ctx_.snapshots->policy(static_cast<uint16_t>(listener));
  if (!ctx_.lifecycle->count_listener(id, policy.max_connections)) {
    return ctx_.lifecycle->close(id, CloseReason::k_max_connections);
  }
  if (ctx_.shared.routes[listener].accept_proxy) {
    Conn& conn = ctx_.conns[id];
    conn.state = State::kProxyHeader;
    ctx_.lifecycle->rearm_timer(id);
    // Who may send a header is decided by the socket's own source, before a byte is read.
    if (!policy.trusted.empty()) return ask_peer_name(id);
    conn.flow[kUp].expect_data = true;  // the proxy in front sends its header at once
    return peek(id);
  }
  inspect(id);
}

void Intake::peek(uint32_t id) {
  auto it = headers_.find(id);
  const size_t limit = it == headers_.end() ? kMaxAcceptedProxyHeader : it->second.reader.peek_limit();
  ctx_.pump->arm_recv(id, kUp, Tag::kRecvProxyHeader, MSG_PEEK,
                      static_cast<uint32_t>(std::min<size_t>(limit, ctx_.config.buffer_size)));
}

void Intake::on_header_peek(uint32_t id, int res, uint32_t cqe_flags) {
  // EOF before a whole header is as bad as a malformed one (HAProxy says the same).
  const int32_t buf = ctx_.pump->take_peek(id, res, cqe_flags, CloseReason::k_bad_proxy_header);
  if (buf < 0) return;
  Conn& conn = ctx_.conns[id];
  HeaderRead& h = headers_[id];
  ParsedProxyHeader parsed;
  const char* bytes = reinterpret_cast<const char*>(ctx_.buffers.buffer(static_cast<uint16_t>(buf)));
  const ProxyHeaderReader::Step step = h.reader.on_peek(bytes, static_cast<size_t>(res), &parsed);
  // Peeked bytes are still in the socket: the buffer goes back at once.
  ctx_.pump->release_buffer(buf);
  if (step.next == ProxyHeaderReader::Next::kInvalid) {
    return ctx_.lifecycle->close(id, CloseReason::k_bad_proxy_header);
  }
  h.consuming = step.consume;
  h.complete = step.next == ProxyHeaderReader::Next::kComplete;
  if (h.complete && parsed.has_addresses) {
    h.has_addresses = true;
    memcpy(&ctx_.peer_names[id], &parsed.src, sizeof(sockaddr_in6));
    conn.has_peer_name = true;
    if (ctx_.proxied_dsts.empty()) ctx_.proxied_dsts.resize(ctx_.conns.size());
    memcpy(&ctx_.proxied_dsts[id], &parsed.dst, sizeof(sockaddr_in6));
    conn.has_proxied_dst = true;
  }
  // Exactly the header's bytes, which the peek showed are there: MSG_WAITALL makes one recv of
  // them whole. The client's data behind them stays in the socket until a backend is connected.
  io_uring_sqe* sqe = ctx_.ring.sqe();
  io_uring_prep_recv(sqe, conn.client, sink_.data(), step.consume, MSG_WAITALL);
  sqe->flags |= IOSQE_FIXED_FILE;
  sqe->user_data = ctx_.data(Tag::kConsumeProxyHeader, id);
  ++conn.inflight;
}

void Intake::on_header_consumed(uint32_t id, int res) {
  Conn& conn = ctx_.conns[id];
  --conn.inflight;
  if (conn.state == State::kClosing) return ctx_.lifecycle->maybe_finish(id);
  auto it = headers_.find(id);
  if (it == headers_.end() || res != static_cast<int>(it->second.consuming)) {
    return ctx_.lifecycle->close(id, res <= 0 ? close_reason_for(res) : CloseReason::k_error);
  }
  if (!it->second.complete) return peek(id);  // a header in pieces: wait for the rest
  headers_.erase(it);
  conn.state = State::kConnecting;
  conn.last_active_ns = ctx_.now_ns;
  // The client's address is the header's; for LOCAL or UNKNOWN the socket's own (asked for
  // when needed, or known already from the trusted-proxies check).
  inspect(id);
}

void Intake::inspect(uint32_t id) {
  if (ctx_.shared.routes[ctx_.conns[id].listener].sni) return ctx_.sni->start(id);
  identify(id);
}

void Intake::forget(uint32_t id) {
  if (!headers_.empty()) headers_.erase(id);
}

bool Intake::needs_peer_name(const Conn& conn) const {
  const ListenerPolicy& policy = ctx_.snapshots->policy(conn.listener);
  return conn.snap->needs_peer_name || ctx_.shared.access_log != nullptr || !policy.acl.empty() ||
         policy.sources != nullptr;
}

int Intake::admit_source(uint32_t id) {
  Conn& conn = ctx_.conns[id];
  sources::SharedSourceTable* table = ctx_.snapshots->policy(conn.listener).sources;
  if (table == nullptr || conn.source_table != nullptr) return 0;
  // The header's source when a PROXY header named one (from a trusted sender: others were
  // closed before it was read), otherwise the socket's own.
  const sources::SourceKey key = sources::source_key(reinterpret_cast<const sockaddr*>(&ctx_.peer_names[id]));
  switch (table->acquire(key, ctx_.now_ns)) {
    case sources::Admission::kAdmitted:
      conn.source_table = table;
      conn.source = key;
      return 0;
    case sources::Admission::kTooMany:
      ctx_.lifecycle->close(id, CloseReason::k_source_connections);
      break;
    case sources::Admission::kTooFast:
      ctx_.lifecycle->close(id, CloseReason::k_source_rate);
      break;
    case sources::Admission::kTableFull:
      ctx_.lifecycle->close(id, CloseReason::k_source_table_full);
      break;
  }
  return -EAGAIN;
}

void Intake::identify(uint32_t id) {
  Conn& conn = ctx_.conns[id];
  if (conn.has_peer_name) return route(id);  // named by a PROXY header, or asked already
  if (!needs_peer_name(conn)) return ctx_.upstream->connect(id);
  ask_peer_name(id);
}

void Intake::ask_peer_name(uint32_t id) {
  Conn& conn = ctx_.conns[id];
  // Multishot accept cannot report the client's address per connection, so ask the socket:
  // getsockopt(SO_PEERNAME) through the socket uring_cmd. The length must be exactly the
  // family's sockaddr size.
  const int family = ctx_.shared.routes[conn.listener].family;
  io_uring_sqe* sqe = ctx_.ring.sqe();
  uring::prep_cmd_sock_direct(sqe, uring::kSocketOpGetsockopt, conn.client, SOL_SOCKET,
                              SO_PEERNAME, &ctx_.peer_names[id],
                              family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
  sqe->user_data = ctx_.data(Tag::kPeerName, id);
  ++conn.inflight;
}

void Intake::on_peer_name(uint32_t id, int res) {
  Conn& conn = ctx_.conns[id];
  --conn.inflight;
  if (conn.state == State::kClosing) return ctx_.lifecycle->maybe_finish(id);
  // Not connected any more: the client went away before it could be asked.
  if (res < 0) return ctx_.lifecycle->close(id, res == -ENOTCONN ? CloseReason::k_reset : CloseReason::k_error);
  conn.has_peer_name = true;
  if (conn.state == State::kProxyHeader) {
    // trusted-proxies: only these sources may say who the client is.
    const ListenerPolicy& policy = ctx_.snapshots->policy(conn.listener);
    if (!policy.trusted.allows(reinterpret_cast<const sockaddr*>(&ctx_.peer_names[id]))) {
      return ctx_.lifecycle->close(id, CloseReason::k_untrusted_proxy);
    }
    conn.flow[kUp].expect_data = true;
    return peek(id);
  }
  route(id);
}

void Intake::route(uint32_t id) {
  Conn& conn = ctx_.conns[id];
  const sockaddr_in6& peer = ctx_.peer_names[id];
  const Acl& acl = ctx_.snapshots->policy(conn.listener).acl;
  if (conn.has_peer_name && !acl.allows(reinterpret_cast<const sockaddr*>(&peer))) {
    return ctx_.lifecycle->close(id, CloseReason::k_denied);
  }
  // Once per connection, when its address is known; denied clients take no token.
  if (conn.has_peer_name && admit_source(id) < 0) return;
  if (conn.snap->snapshot->policy == balancer::Policy::kMaglev && conn.has_peer_name) {
    const bool with_port = conn.snap->snapshot->hash_key == balancer::HashKey::kAddrPort;
    if (peer.sin6_family == AF_INET6) {
      conn.key_hash = balancer::hash64(&peer.sin6_addr, sizeof(peer.sin6_addr), with_port ? peer.sin6_port : 0);
    } else {
      const auto& v4 = reinterpret_cast<const sockaddr_in&>(peer);
      conn.key_hash = balancer::hash64(&v4.sin_addr, sizeof(v4.sin_addr), with_port ? v4.sin_port : 0);
    }
  }
  ctx_.upstream->connect(id);
}

}  // namespace ringlb::proxy
