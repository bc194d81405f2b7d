#include "server/proxy/sni_inspector.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <span>

#include "server/protocol/client_hello.h"
#include "server/protocol/sni_routes.h"
#include "server/proxy/intake.h"
#include "server/proxy/lifecycle.h"
#include "server/proxy/pump.h"
#include "server/proxy/snapshot_cache.h"
#include "server/uring/compat.h"
#include "server/worker/context.h"

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;

// SO_RCVLOWAT back to the default once routed: the pump's recvs take whatever has arrived.
const int kDefaultLowat = 1;

}  // namespace

uint32_t SniInspector::peek_limit() const {
  return static_cast<uint32_t>(std::min<size_t>(protocol::kMaxClientHello, ctx_.config.buffer_size));
}

void SniInspector::start(uint32_t id) {
  Conn& conn = ctx_.conns[id];
  if (seen_.empty()) {
    seen_.resize(ctx_.conns.size());
    lowat_.resize(ctx_.conns.size());
  }
  seen_[id] = 0;
  lowat_[id] = kDefaultLowat;
  conn.state = State::kClientHello;
  conn.last_active_ns = ctx_.now_ns;  // the inspect timeout counts from here, and stays put
  ctx_.lifecycle->rearm_timer(id);
  conn.flow[kUp].expect_data = true;  // a TLS client speaks first, at once
  peek(id);
}

void SniInspector::peek(uint32_t id) {
  ctx_.pump->arm_recv(id, kUp, Tag::kRecvClientHello, MSG_PEEK, peek_limit());
}

void SniInspector::wait_for(uint32_t id, uint32_t bytes) {
  Conn& conn = ctx_.conns[id];
  conn.flow[kUp].expect_data = false;  // POLL_FIRST: readable only at the new low-water mark
  if (lowat_[id] != static_cast<int>(bytes)) {
    ctx_.ring.reserve(2);  // the linked pair in one submission
    lowat_[id] = static_cast<int>(bytes);
    io_uring_sqe* sqe = ctx_.ring.sqe();
    uring::prep_cmd_sock_direct(sqe, uring::kSocketOpSetsockopt, conn.client, SOL_SOCKET, SO_RCVLOWAT,
                                &lowat_[id], sizeof(int));
    // Linked: the peek must not be polled for before the mark is set. If setting it fails, the
    // peek fails with -ECANCELED and the client is closed.
    sqe->flags |= IOSQE_IO_LINK;
    ctx_.quiet(sqe, Tag::kQuietSockopt);
  }
  peek(id);
}

void SniInspector::on_peek(uint32_t id, int res, uint32_t cqe_flags) {
  // EOF before a whole ClientHello: not a TLS client, or one that gave up.
  const int32_t buf = ctx_.pump->take_peek(id, res, cqe_flags, CloseReason::k_bad_client_hello);
  if (buf < 0) return;
  Conn& conn = ctx_.conns[id];
  const auto* bytes = ctx_.buffers.buffer(static_cast<uint16_t>(buf));
  const protocol::HelloResult hello =
      protocol::read_client_hello(std::span<const uint8_t>(bytes, static_cast<size_t>(res)), peek_limit());
  // Peeked bytes are still in the socket: the buffer goes back at once.
  ctx_.pump->release_buffer(buf);
  if (hello.status == protocol::HelloStatus::kBad) return ctx_.lifecycle->close(id, CloseReason::k_bad_client_hello);
  if (hello.status == protocol::HelloStatus::kNeedMore) {
    // The socket turned readable without reaching the mark, so it was the FIN: the hello
    // will never be whole.
    if (static_cast<uint32_t>(res) <= seen_[id]) return ctx_.lifecycle->close(id, CloseReason::k_bad_client_hello);
    seen_[id] = static_cast<uint32_t>(res);
    return wait_for(id, static_cast<uint32_t>(hello.length));
  }
  if (!hello.server_name.empty()) {
    // Kept for the access log (bounded: a host name has at most 255 bytes anyway); assign()
    // reuses the slot's buffer, so this allocates only the first few times.
    if (ctx_.server_names.size() < ctx_.conns.size()) ctx_.server_names.resize(ctx_.conns.size());
    ctx_.server_names[id].assign(hello.server_name, 0, kMaxServerName);
    conn.has_server_name = true;
  }
  const size_t cluster = ctx_.shared.routes[conn.listener].sni_routes.match(hello.server_name);
  if (cluster == protocol::kNoCluster) return ctx_.lifecycle->close(id, CloseReason::k_no_route);
  if (lowat_[id] != kDefaultLowat) {
    // Unlinked: it runs at submission, before any recv of the pump (which needs a backend first).
    io_uring_sqe* sqe = ctx_.ring.sqe();
    uring::prep_cmd_sock_direct(sqe, uring::kSocketOpSetsockopt, conn.client, SOL_SOCKET, SO_RCVLOWAT,
                                const_cast<int*>(&kDefaultLowat), sizeof(int));
    ctx_.quiet(sqe, Tag::kQuietSockopt);
    lowat_[id] = kDefaultLowat;
  }
  ctx_.stats.routed(conn.listener, cluster).add();
  conn.cluster = static_cast<uint16_t>(cluster);
  conn.snap = ctx_.snapshots->acquire(conn.cluster);
  conn.state = State::kConnecting;
  conn.last_active_ns = ctx_.now_ns;
  ctx_.intake->identify(id);
}

}  // namespace ringlb::proxy
