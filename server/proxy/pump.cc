#include "server/proxy/pump.h"

#include <sys/socket.h>

#include <cerrno>

#include "server/proxy/intake.h"
#include "server/proxy/lifecycle.h"
#include "server/proxy/sni_inspector.h"
#include "server/worker/context.h"

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;

}  // namespace

Pump::Pump(worker::Context& ctx)
    : ctx_(ctx), next_(ctx.config.buffers_per_worker, -1), lens_(ctx.config.buffers_per_worker, 0) {}

void Pump::start(uint32_t id) {
  Conn& conn = ctx_.conns[id];
  conn.state = State::kProxying;
  conn.last_active_ns = ctx_.now_ns;
  ctx_.lifecycle->rearm_timer(id);
  // Clients usually speak first and may have already; the backend has nothing to say yet.
  conn.flow[kUp].expect_data = true;
  arm_flow_recv(id, kUp);
  arm_flow_recv(id, kDown);
}

void Pump::arm_recv(uint32_t id, Dir dir, Tag tag, int extra_flags, uint32_t len) {
  Conn& conn = ctx_.conns[id];
  Flow& flow = conn.flow[dir];
  const int fd = dir == kUp ? conn.client : conn.backend;
  const uint32_t n = len != 0 ? len : ctx_.config.buffer_size;
  io_uring_sqe* sqe = ctx_.ring.sqe();
  if (flow.granted >= 0) {
    // The pool handed this flow a buffer (it waited longest): the recv names it.
    io_uring_prep_recv(sqe, fd, ctx_.buffers.buffer(static_cast<uint16_t>(flow.granted)), n, extra_flags);
    sqe->flags |= IOSQE_FIXED_FILE;
  } else {
    io_uring_prep_recv(sqe, fd, nullptr, n, extra_flags);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = ctx_.buffers.group();
  }
  if (!flow.expect_data) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
  sqe->user_data = ctx_.data(tag, id);
  ++conn.inflight;
}

void Pump::arm_flow_recv(uint32_t id, Dir dir) {
  Conn& conn = ctx_.conns[id];
  Flow& flow = conn.flow[dir];
  const Tag tag = dir == kUp ? Tag::kRecvClient : Tag::kRecvBackend;
  flow.recv_armed = true;
  // A granted buffer takes one recv that names it; multishot recvs pick from the provided ring.
  flow.multishot = ctx_.config.recv_multishot && flow.granted < 0;
  if (!flow.multishot) return arm_recv(id, dir, tag);
  io_uring_sqe* sqe = ctx_.ring.sqe();
  io_uring_prep_recv_multishot(sqe, dir == kUp ? conn.client : conn.backend, nullptr, 0, 0);
  sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
  sqe->buf_group = ctx_.buffers.group();
  if (!flow.expect_data) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
  // A byte budget (kernel 6.17's multishot limit, in the optlen field): the recv ends by itself,
  // without IORING_CQE_F_MORE, once it has taken what the flow's free buffers hold. Without it
  // the kernel may fill dozens of buffers before a cancel lands.
  sqe->file_index = (ctx_.config.flow_buffers - flow.queued) * ctx_.config.buffer_size;
  sqe->user_data = flow.recv_data = ctx_.data(tag, id);
  ++conn.inflight;  // until its last completion, the one without IORING_CQE_F_MORE
}

void Pump::maybe_arm(uint32_t id, Dir dir) {
  Conn& conn = ctx_.conns[id];
  const Flow& flow = conn.flow[dir];
  if (flow.recv_armed || flow.eof || flow.eof_pending || flow.waiting) return;
  if (conn.state != State::kProxying || flow.queued >= ctx_.config.flow_buffers) return;
  arm_flow_recv(id, dir);
}

void Pump::cancel_recv(uint32_t id, Dir dir) {
  Conn& conn = ctx_.conns[id];
  Flow& flow = conn.flow[dir];
  flow.cancelling = true;
  ctx_.stats.recv_stopped.add();
  io_uring_sqe* sqe = ctx_.ring.sqe();
  io_uring_prep_cancel64(sqe, flow.recv_data, 0);
  sqe->user_data = ctx_.data(Tag::kCancel, id);
  ++conn.inflight;
}

void Pump::submit_send(uint32_t id, Dir dir) {
  Conn& conn = ctx_.conns[id];
  Flow& flow = conn.flow[dir];
  io_uring_sqe* sqe = ctx_.ring.sqe();
  // WRITE_FIXED: the bytes sit in the registered region, so the kernel skips pinning them.
  io_uring_prep_write_fixed(sqe, dir == kUp ? conn.backend : conn.client,
                            ctx_.buffers.buffer(static_cast<uint16_t>(flow.buf)) + flow.off,
                            flow.len - flow.off, 0, static_cast<int>(ctx_.index));
  sqe->flags |= IOSQE_FIXED_FILE;
  sqe->user_data = ctx_.data(dir == kUp ? Tag::kSendBackend : Tag::kSendClient, id);
  flow.sending = true;
  ++conn.inflight;
}

void Pump::enqueue(Flow& flow, int32_t buf, uint32_t len) {
  next_[static_cast<size_t>(buf)] = -1;
  if (flow.queued == 0) {
    flow.buf = flow.tail = buf;
    flow.len = len;
    flow.off = 0;
  } else {
    lens_[static_cast<size_t>(buf)] = len;
    next_[static_cast<size_t>(flow.tail)] = buf;
    flow.tail = buf;
  }
  ++flow.queued;
}

int32_t Pump::dequeue(Flow& flow) {
  const int32_t buf = flow.buf;
  if (--flow.queued == 0) {
    flow.buf = flow.tail = -1;
    flow.len = 0;
  } else {
    flow.buf = next_[static_cast<size_t>(buf)];
    flow.len = lens_[static_cast<size_t>(flow.buf)];
  }
  flow.off = 0;
  return buf;
}

void Pump::release_flow(Flow& flow) {
  while (flow.queued > 0) release_buffer(dequeue(flow));
}

void Pump::on_recv(uint32_t id, Dir dir, int res, uint32_t cqe_flags) {
  Conn& conn = ctx_.conns[id];
  Flow& flow = conn.flow[dir];
  // A multishot recv stays armed (and counted in flight) while its completions say MORE.
  const bool more = (cqe_flags & IORING_CQE_F_MORE) != 0;
  if (!more) {
    --conn.inflight;
    flow.recv_armed = flow.cancelling = false;
  }
  const int32_t buf = take_recv_buffer(flow, cqe_flags);
  if (conn.state == State::kClosing) {
    release_buffer(buf);
    return ctx_.lifecycle->maybe_finish(id);
  }
  if (res > 0) {
    flow.expect_data = (cqe_flags & IORING_CQE_F_SOCK_NONEMPTY) != 0;
    enqueue(flow, buf, static_cast<uint32_t>(res));
    conn.last_active_ns = ctx_.now_ns;
    conn.bytes[dir] += static_cast<uint64_t>(res);
    metrics::BackendStats& backend = ctx_.stats.backends[conn.backend_id];
    (dir == kUp ? backend.bytes_to_backend : backend.bytes_from_backend).add(static_cast<uint64_t>(res));
    if (!flow.sending) submit_send(id, dir);
    if (!flow.recv_armed) {
      if (flow.multishot) ctx_.stats.recv_ended.add();  // the kernel ended it: arm another
      return maybe_arm(id, dir);
    }
    // The chain is full: stop receiving until the reader catches up.
    if (flow.queued >= ctx_.config.flow_buffers && !flow.cancelling) cancel_recv(id, dir);
    return;
  }
  release_buffer(buf);
  if (res == 0) {
    // FIN: passed on once every byte received before it has been sent.
    if (flow.queued == 0) return forward_eof(id, dir);
    flow.eof_pending = true;
    return;
  }
  if (res == -ENOBUFS) {
    if (flow.queued == 0) return wait_for_buffer(id, dir);
    return;  // armed again once the chain drains (and waits for a buffer then, if need be)
  }
  if (res == -ECANCELED) return maybe_arm(id, dir);  // stopped for back-pressure (cancel_recv)
  ctx_.lifecycle->close(id, close_reason_for(res));
}

void Pump::forward_eof(uint32_t id, Dir dir) {
  Conn& conn = ctx_.conns[id];
  Flow& flow = conn.flow[dir];
  // Half-close: pass the FIN on and keep the other direction flowing.
  if (!conn.flow[kUp].eof && !conn.flow[kDown].eof) {
    conn.first_eof = dir == kUp ? CloseReason::k_client_eof : CloseReason::k_backend_eof;
  }
  flow.eof = true;
  flow.eof_pending = false;
  conn.last_active_ns = ctx_.now_ns;  // the fin timeout counts from the FIN
  ctx_.lifecycle->rearm_timer(id);
  if (conn.flow[kUp].eof && conn.flow[kDown].eof) {
    // Both sides are done: the close that follows sends this FIN, no shutdown needed.
    return ctx_.lifecycle->maybe_close_after_eof(id);
  }
  // The kernel always runs SHUTDOWN from io-wq and looks the slot up only then, so it must
  // complete before the slot may be closed (and reused): it is waited for like any other op.
  // It is queued last in this batch (submit_shutdowns); counting it now keeps the slot open.
  shutdowns_.push_back({id, static_cast<uint8_t>(dir), conn.gen});
  ++conn.inflight;
}

void Pump::on_send(uint32_t id, Dir dir, int res) {
  Conn& conn = ctx_.conns[id];
  Flow& flow = conn.flow[dir];
  --conn.inflight;
  flow.sending = false;
  if (conn.state == State::kClosing || res <= 0) {
    release_flow(flow);
    if (conn.state == State::kClosing) return ctx_.lifecycle->maybe_finish(id);
    return ctx_.lifecycle->close(id, close_reason_for(res));
  }
  conn.last_active_ns = ctx_.now_ns;
  flow.off += static_cast<uint32_t>(res);
  if (flow.off < flow.len) return submit_send(id, dir);  // short write: send the rest, in order
  // Others waited for a buffer: the one just freed went to the oldest of them, and this flow
  // queues behind them rather than overtake.
  const bool to_waiter = release_buffer(dequeue(flow));
  if (flow.queued > 0) submit_send(id, dir);
  else if (flow.eof_pending) return forward_eof(id, dir);
  if (flow.recv_armed) return;
  if (to_waiter && flow.queued == 0) return wait_for_buffer(id, dir);
  maybe_arm(id, dir);
}

void Pump::on_shutdown(uint32_t id) {
  Conn& conn = ctx_.conns[id];
  --conn.inflight;
  if (conn.state == State::kClosing) return ctx_.lifecycle->maybe_finish(id);
  ctx_.lifecycle->maybe_close_after_eof(id);
}

void Pump::submit_shutdowns() {
  // SHUTDOWNs go last in the batch: the io-wq thread that runs one takes this ring's lock to
  // look up the fixed slot, and the lock is free once this thread is done submitting. Queued
  // in between, io-wq spun on the lock (a third of its time at 1000 connections).
  for (const worker::FlowRef& w : shutdowns_) {
    const Conn& conn = ctx_.conns[w.conn];
    // Counted in flight when queued, so the connection cannot have been freed since, but for a
    // forced free after lost completions: then the shutdown is dropped.
    if (conn.gen != w.gen || conn.state == State::kFree) continue;
    io_uring_sqe* sqe = ctx_.ring.sqe();
    io_uring_prep_shutdown(sqe, w.dir == kUp ? conn.backend : conn.client, SHUT_WR);
    sqe->flags |= IOSQE_FIXED_FILE;
    sqe->user_data = ctx_.data(Tag::kShutdown, w.conn);
  }
  shutdowns_.clear();
}

int32_t Pump::take_recv_buffer(Flow& flow, uint32_t cqe_flags) {
  const int32_t taken = take_buffer(cqe_flags);
  if (flow.granted < 0) return taken;
  const int32_t granted = flow.granted;  // a recv into a granted buffer carries no buffer flag
  flow.granted = -1;
  return granted;
}

int32_t Pump::take_peek(uint32_t id, int res, uint32_t cqe_flags, metrics::CloseReason at_eof) {
  Conn& conn = ctx_.conns[id];
  --conn.inflight;
  const int32_t buf = take_recv_buffer(conn.flow[kUp], cqe_flags);
  if (conn.state == State::kClosing) {
    release_buffer(buf);
    ctx_.lifecycle->maybe_finish(id);
    return -1;
  }
  if (res == -ENOBUFS) {
    wait_for_buffer(id, kUp);
    return -1;
  }
  if (res <= 0) {
    release_buffer(buf);
    ctx_.lifecycle->close(id, res == 0 ? at_eof : close_reason_for(res));
    return -1;
  }
  return buf;
}

bool Pump::still_waiting(worker::FlowRef ref) const {
  const Conn& conn = ctx_.conns[ref.conn];
  return conn.gen == ref.gen && conn.flow[ref.dir].waiting &&
         (conn.state == State::kProxying || conn.state == State::kProxyHeader ||
          conn.state == State::kClientHello);
}

int32_t Pump::take_buffer(uint32_t cqe_flags) {
  if (!(cqe_flags & IORING_CQE_F_BUFFER)) return -1;
  ctx_.pool->took_from_ring();
  ctx_.stats.buffers_in_use.add();
  return static_cast<int32_t>(cqe_flags >> IORING_CQE_BUFFER_SHIFT);
}

bool Pump::release_buffer(int32_t buf) {
  if (buf < 0) return false;
  const worker::BufferPool::Release r =
      ctx_.pool->release([this](worker::FlowRef ref) { return still_waiting(ref); });
  if (r.to_waiter) {
    resume(r.waiter, buf);  // still in use: it is the waiter's now
    return true;
  }
  ctx_.buffers.recycle(static_cast<uint16_t>(buf));
  ctx_.stats.buffers_in_use.sub();
  return false;
}

void Pump::wait_for_buffer(uint32_t id, Dir dir) {
  Conn& conn = ctx_.conns[id];
  ctx_.stats.buffer_waits.add();
  if (!ctx_.pool->wait({id, static_cast<uint8_t>(dir), conn.gen})) {
    return recv_again(id, dir);  // a buffer came back to the ring while that recv was on its way
  }
  conn.flow[dir].waiting = true;
}

void Pump::resume(worker::FlowRef ref, int32_t buf) {
  Conn& conn = ctx_.conns[ref.conn];
  Flow& flow = conn.flow[ref.dir];
  flow.waiting = false;
  flow.granted = buf;
  recv_again(ref.conn, static_cast<Dir>(ref.dir));
}

void Pump::recv_again(uint32_t id, Dir dir) {
  // A client still sending its PROXY header or ClientHello waits like a proxied one; its
  // reader peeks.
  if (ctx_.conns[id].state == State::kProxyHeader) return ctx_.intake->peek(id);
  if (ctx_.conns[id].state == State::kClientHello) return ctx_.sni->peek(id);
  maybe_arm(id, dir);
}

void Pump::unstick_waiters() {
  uint32_t n = ctx_.pool->in_ring();
  worker::FlowRef ref;
  while (n-- > 0 && ctx_.pool->pop([this](worker::FlowRef r) { return still_waiting(r); }, &ref)) {
    ctx_.conns[ref.conn].flow[ref.dir].waiting = false;
    recv_again(ref.conn, static_cast<Dir>(ref.dir));
  }
}

}  // namespace ringlb::proxy
