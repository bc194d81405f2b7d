#include "server/proxy/upstream.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>

#include "server/proxy/lifecycle.h"
#include "server/proxy/pump.h"
#include "server/proxy/snapshot_cache.h"
#include "server/proxy/snapshot_ref.h"
#include "server/uring/compat.h"
#include "server/worker/context.h"

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;

constexpr uint64_t kQueuePollNs = 10'000'000;
// Tries of socket_direct_alloc that found the table full (-ENFILE), before the client is closed.
constexpr uint8_t kSocketRetries = 3;

__kernel_timespec to_timespec(uint64_t ns) {
  __kernel_timespec ts{};
  ts.tv_sec = static_cast<long long>(ns / 1'000'000'000ULL);
  ts.tv_nsec = static_cast<long long>(ns % 1'000'000'000ULL);
  return ts;
}

const balancer::BackendSpec& spec_of(const Conn& conn) {
  return conn.snap->snapshot->backends[static_cast<size_t>(conn.backend_index)];
}

}  // namespace

Upstream::Upstream(worker::Context& ctx) : ctx_(ctx) { queue_poll_ts_ = to_timespec(kQueuePollNs); }

void Upstream::connect(uint32_t id) {
  Conn& conn = ctx_.conns[id];
  // The cluster's own settings, from the snapshot this client picks from.
  const balancer::Snapshot& cluster = *conn.snap->snapshot;
  const int b = conn.attempts < cluster.connect_attempts ? conn.snap->picker->pick(conn.key_hash, conn.tried) : -1;
  if (b < 0) {
    // Full backends not yet tried are worth waiting for (HAProxy's maxconn queue), also after
    // another backend refused.
    if (conn.attempts < cluster.connect_attempts && cluster.queue_timeout_ms > 0 &&
        !ctx_.draining && conn.snap->picker->waiting_helps(conn.tried)) {
      return enqueue(id);
    }
    return ctx_.lifecycle->close(id, conn.attempts == 0 ? CloseReason::k_no_backend
                                                        : CloseReason::k_connect_failed);
  }
  const balancer::BackendSpec& spec = conn.snap->snapshot->backends[static_cast<size_t>(b)];
  conn.backend_index = b;
  conn.backend_id = spec.id;
  if (b < 64) conn.tried |= 1ULL << b;
  ++conn.attempts;
  // Counted from the pick on, so that leastconn sees connections still being set up.
  ctx_.lifecycle->count_backend(conn, true);
  ctx_.stats.backends[spec.id].connect_attempts.add();
  conn.connect_start_ns = ctx_.now_ns;
  submit_socket(id);
}

void Upstream::on_socket(uint32_t id, int res) {
  Conn& conn = ctx_.conns[id];
  --conn.inflight;
  if (res >= 0) {
    ctx_.stats.open_slots.add();
    conn.backend = res;
  }
  if (conn.state == State::kClosing) return ctx_.lifecycle->maybe_finish(id);
  if (res == -ENFILE && conn.socket_retries < kSocketRetries) {
    // The table is full of hand-offs of a burst beyond this worker's capacity, whose closes
    // were prepared in this same batch: try again once they have run.
    ++conn.socket_retries;
    socket_retries_.push_back({id, conn.gen});
    return;
  }
  if (res < 0) return ctx_.lifecycle->close(id, CloseReason::k_error);
  const Address& addr = ctx_.shared.backend_addresses[conn.backend_id];
  const bool tcp = addr.family() != AF_UNIX;
  // The whole chain in one submission: split, the connect would run without its timeout.
  ctx_.ring.reserve(tcp ? 3 : 2);
  io_uring_sqe* sqe;
  if (tcp) {
    static const int kOne = 1;
    // Proxied bytes must not wait for Nagle; the client side inherits it from the listener.
    // (A Unix socket has no Nagle, and would fail the option, and with it the linked connect.)
    sqe = ctx_.ring.sqe();
    uring::prep_cmd_sock_direct(sqe, uring::kSocketOpSetsockopt, conn.backend, IPPROTO_TCP,
                                TCP_NODELAY, const_cast<int*>(&kOne), sizeof(kOne));
    sqe->flags |= IOSQE_IO_LINK;
    ctx_.quiet(sqe, Tag::kQuietSockopt);
  }
  sqe = ctx_.ring.sqe();
  io_uring_prep_connect(sqe, conn.backend, addr.get(), addr.length);
  sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_LINK;
  sqe->user_data = ctx_.data(Tag::kConnect, id);
  ++conn.inflight;
  sqe = ctx_.ring.sqe();
  io_uring_prep_link_timeout(sqe, &conn.snap->connect_ts, 0);
  // Not counted in flight: it ends no later than the connect it guards, and names no connection.
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  sqe->user_data = ctx_.data_plain(Tag::kQuietConnectTimeout, 0);
}

void Upstream::retry_sockets() {
  for (const Retry& r : socket_retries_) {
    const Conn& conn = ctx_.conns[r.id];
    // Closed meanwhile (nothing was in flight, so it is freed, perhaps reused): nothing to do.
    if (conn.gen != r.gen || conn.state != State::kConnecting) continue;
    submit_socket(r.id);
  }
  socket_retries_.clear();
}

void Upstream::submit_socket(uint32_t id) {
  Conn& conn = ctx_.conns[id];
  io_uring_sqe* sqe = ctx_.ring.sqe();
  io_uring_prep_socket_direct_alloc(sqe, ctx_.shared.backend_addresses[conn.backend_id].family(), SOCK_STREAM, 0, 0);
  sqe->user_data = ctx_.data(Tag::kSocket, id);
  ++conn.inflight;
}

void Upstream::on_connect(uint32_t id, int res) {
  Conn& conn = ctx_.conns[id];
  --conn.inflight;
  if (conn.state == State::kClosing) return ctx_.lifecycle->maybe_finish(id);
  metrics::BackendStats& backend = ctx_.stats.backends[conn.backend_id];
  const balancer::BackendSpec& spec = spec_of(conn);
  if (res == 0) {
    conn.connected_ns = ctx_.now_ns;
    if (ctx_.config.metrics_enabled) backend.connect_latency.observe_ns(ctx_.now_ns - conn.connect_start_ns);
    if (spec.state->connect_failures_in_a_row.load(std::memory_order_relaxed) != 0) {
      spec.state->connect_failures_in_a_row.store(0, std::memory_order_relaxed);
    }
    const auto version = static_cast<ProxyProtocol>(spec.proxy_protocol);
    if (version != ProxyProtocol::kNone) return send_proxy_header(id, version);
    return ctx_.pump->start(id);
  }
  // Refused, unreachable or timed out (-ECANCELED from the linked timeout): try another backend.
  backend.connect_failures.add();
  connect_failed(conn);
  ctx_.close_slot(conn.backend);
  conn.backend = -1;
  connect(id);
}

void Upstream::connect_failed(Conn& conn) {
  ctx_.lifecycle->count_backend(conn, false);
  // Passive health: enough failed connects in a row take the backend down until the active
  // checks bring it back (only where checks run, or nothing would bring it back).
  const balancer::BackendSpec& spec = spec_of(conn);
  if (spec.check_interval_ms == 0) return;
  const uint32_t failures = spec.state->connect_failures_in_a_row.fetch_add(1, std::memory_order_relaxed) + 1;
  if (failures >= spec.fall && spec.state->up.exchange(0, std::memory_order_relaxed)) {
    fprintf(stderr, "ringlb: backend %s/%s is down: %u connects failed in a row\n",
            ctx_.shared.backends.cluster_name(conn.cluster).c_str(), spec.name.c_str(), failures);
  }
}

void Upstream::enqueue(uint32_t id) {
  Conn& conn = ctx_.conns[id];
  conn.state = State::kQueued;
  conn.queued_ns = ctx_.now_ns;
  conn.queue_ticket = queue_.push(id, conn.accept_us);
  ctx_.stats.queued.set(queue_.size());
  ctx_.lifecycle->rearm_timer(id);
  if (!queue_poll_armed_) arm_queue_poll();
}

void Upstream::left_queue(uint32_t id) {
  Conn& conn = ctx_.conns[id];
  conn.queue_wait_ns += ctx_.now_ns - conn.queued_ns;
  queue_.left();
  ctx_.stats.queued.set(queue_.size());
}

void Upstream::dispatch_queue() {
  if (queue_.size() == 0) return;
  queue_.dispatch(
      [this](uint32_t id, uint64_t ticket) {
        const Conn& conn = ctx_.conns[id];
        return conn.state == State::kQueued && conn.queue_ticket == ticket;
      },
      [this](uint32_t id) { return ctx_.conns[id].snap->picker->can_take(ctx_.conns[id].tried); },
      [this](uint32_t id) {
        Conn& conn = ctx_.conns[id];
        ctx_.stats.queued.set(queue_.size());
        conn.state = State::kConnecting;
        conn.queue_wait_ns += ctx_.now_ns - conn.queued_ns;
        conn.queue_ticket = 0;
        connect(id);
      });
}

void Upstream::on_queue_poll() {
  queue_poll_armed_ = false;
  dispatch_queue();
  if (queue_.size() > 0) arm_queue_poll();
}

void Upstream::arm_queue_poll() {
  io_uring_sqe* sqe = ctx_.ring.sqe();
  io_uring_prep_timeout(sqe, &queue_poll_ts_, 0, 0);
  sqe->user_data = ctx_.data_plain(Tag::kQueuePoll, 0);
  queue_poll_armed_ = true;
}

void Upstream::send_proxy_header(uint32_t id, ProxyProtocol version) {
  // Nothing is read from either side until the header is out, so it precedes every byte. The
  // destination is the listening address: for a wildcard listener that is 0.0.0.0 or ::, since
  // this kernel's socket uring_cmds cannot ask a direct descriptor for its local address.
  if (proxy_headers_.empty()) proxy_headers_.resize(ctx_.conns.size());
  ProxyHeader& header = proxy_headers_[id];
  const Conn& conn = ctx_.conns[id];
  // Behind another proxy (accept-proxy), the addresses its header named are passed on.
  const sockaddr* dst = conn.has_proxied_dst ? reinterpret_cast<const sockaddr*>(&ctx_.proxied_dsts[id])
                                             : ctx_.shared.listen_bound[conn.listener].get();
  header.len = static_cast<uint8_t>(write_proxy_header(
      version, reinterpret_cast<const sockaddr*>(&ctx_.peer_names[id]), dst, header.bytes));
  header.off = 0;
  submit_proxy_header(id);
}

void Upstream::submit_proxy_header(uint32_t id) {
  Conn& conn = ctx_.conns[id];
  ProxyHeader& header = proxy_headers_[id];
  io_uring_sqe* sqe = ctx_.ring.sqe();
  io_uring_prep_send(sqe, conn.backend, header.bytes + header.off, header.len - header.off, MSG_NOSIGNAL);
  sqe->flags |= IOSQE_FIXED_FILE;
  sqe->user_data = ctx_.data(Tag::kSendProxyHeader, id);
  ++conn.inflight;
}

void Upstream::on_proxy_header(uint32_t id, int res) {
  Conn& conn = ctx_.conns[id];
  ProxyHeader& header = proxy_headers_[id];
  --conn.inflight;
  if (conn.state == State::kClosing) return ctx_.lifecycle->maybe_finish(id);
  if (res <= 0) {
    return ctx_.lifecycle->close(id, close_reason_for(res));
  }
  header.off = static_cast<uint8_t>(header.off + res);
  if (header.off < header.len) return submit_proxy_header(id);  // short write: the rest, in order
  ctx_.pump->start(id);
}

}  // namespace ringlb::proxy
