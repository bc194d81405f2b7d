#include "server/proxy/lifecycle.h"

#include <cerrno>
#include <cstdio>

#include "server/limits/shared_source_table.h"
#include "server/proxy/intake.h"
#include "server/proxy/pump.h"
#include "server/proxy/snapshot_cache.h"
#include "server/proxy/upstream.h"
#include "server/uring/compat.h"
#include "server/worker/access_batch.h"
#include "server/worker/context.h"
#include "server/worker/timer_wheel.h"

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;

// After the kernel dropped completions, a connection that has been closing this long is freed
// even if it still counts completions in flight: they may never come.
constexpr uint64_t kLostCompletionGraceNs = 10'000'000'000ULL;

}  // namespace

CloseReason close_reason_for(int res) {
  return res == -ECONNRESET || res == -EPIPE ? CloseReason::k_reset : CloseReason::k_error;
}

Lifecycle::Lifecycle(worker::Context& ctx) : ctx_(ctx) {}

void Lifecycle::init(uint32_t capacity) {
  set_policies(ctx_.snapshots->policies());
  ctx_.conns.resize(capacity);
  ctx_.peer_names.resize(capacity);
  free_.reserve(capacity);
  for (uint32_t i = capacity; i > 0; --i) free_.push_back(i - 1);
}

void Lifecycle::set_policies(const ListenerPolicies& policies) {
  timeouts_.assign(policies.listeners.size(), Timeouts{});
  for (size_t i = 0; i < policies.listeners.size(); ++i) {
    const ListenerPolicy& p = policies.listeners[i];
    Timeouts& t = timeouts_[i];
    t.idle_ns = to_ns(p.idle_timeout);
    t.fin_ns = to_ns(p.fin_timeout);
    t.max_duration_ns = to_ns(p.max_connection_duration);
    t.proxy_header_ns = to_ns(p.proxy_header_timeout);
    t.tls_inspect_ns = to_ns(p.tls_inspect_timeout);
  }
}

Timeouts Lifecycle::timeouts_for(const Conn& conn) const {
  Timeouts t = timeouts_[conn.listener];
  if (conn.snap != nullptr) t.queue_ns = conn.snap->queue_ns;
  return t;
}

bool Lifecycle::count_listener(uint32_t id, unsigned limit) {
  Conn& conn = ctx_.conns[id];
  std::atomic<uint32_t>& active = ctx_.shared.listener_active[conn.listener];
  if (active.fetch_add(1, std::memory_order_relaxed) >= limit && limit != 0) {
    active.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  conn.listener_counted = true;
  return true;
}

int Lifecycle::open(int client, uint16_t listener, uint32_t accept_us) {
  if (free_.empty()) return -1;
  const uint32_t id = free_.back();
  free_.pop_back();
  Conn& conn = ctx_.conns[id];
  const uint8_t gen = conn.gen;
  conn = Conn{};
  conn.gen = gen;
  conn.state = State::kConnecting;
  conn.client = client;
  conn.listener = listener;
  conn.start_ns = ctx_.now_ns;
  conn.accept_us = accept_us;
  conn.last_active_ns = ctx_.now_ns;
  const ListenerRoute& route = ctx_.shared.routes[listener];
  if (!route.sni) {
    conn.cluster = route.cluster;
    conn.snap = ctx_.snapshots->acquire(route.cluster);
  }
  // Accepted just before a reload removed its listener: served until the drain deadline.
  if (ctx_.snapshots->policy(listener).removed) conn.deadline_ns = ctx_.now_ns + to_ns(ctx_.config.drain_timeout);
  rearm_timer(id);  // a max connection duration counts while it connects, too
  ++ctx_.live;
  ctx_.stats.active.set(ctx_.live);
  ctx_.slot.active.store(ctx_.live, std::memory_order_relaxed);
  return static_cast<int>(id);
}

void Lifecycle::close(uint32_t id, CloseReason reason) {
  Conn& conn = ctx_.conns[id];
  if (conn.state == State::kClosing || conn.state == State::kFree) return;
  if (conn.state == State::kQueued) ctx_.upstream->left_queue(id);
  conn.state = State::kClosing;
  conn.closing_ns = ctx_.now_ns;
  conn.closed_as = reason;
  if (ctx_.shared.access_log != nullptr) ctx_.access->log(id, reason);
  conn.flow[kUp].waiting = conn.flow[kDown].waiting = false;
  ctx_.timers->cancel(id);
  if (ctx_.completions_lost) close_grace(id);
  if (conn.inflight > 0) {
    // Outstanding recvs would otherwise wait for data forever; cancel everything on both slots.
    for (int slot : {conn.client, conn.backend}) {
      if (slot < 0) continue;
      io_uring_sqe* sqe = ctx_.ring.sqe();
      io_uring_prep_cancel_fd(sqe, slot, IORING_ASYNC_CANCEL_FD_FIXED | IORING_ASYNC_CANCEL_ALL);
      sqe->user_data = ctx_.data(Tag::kCancel, id);
      ++conn.inflight;
    }
  }
  maybe_finish(id);
}

void Lifecycle::maybe_finish(uint32_t id) {
  Conn& conn = ctx_.conns[id];
  if (conn.state != State::kClosing || conn.inflight > 0) return;
  // Nothing is in flight on either socket now; the closes run in submission order, after any
  // shutdown queued before them, and nothing waits for their completions.
  if (conn.client >= 0) ctx_.close_slot(conn.client);
  if (conn.backend >= 0) ctx_.close_slot(conn.backend);
  conn.client = conn.backend = -1;
  free(id);
}

void Lifecycle::maybe_close_after_eof(uint32_t id) {
  Conn& conn = ctx_.conns[id];
  if (conn.flow[kUp].eof && conn.flow[kDown].eof && conn.inflight == 0) close(id, conn.first_eof);
}

void Lifecycle::free(uint32_t id) {
  Conn& conn = ctx_.conns[id];
  ctx_.timers->cancel(id);
  // Buffers still held here: bytes not yet sent when a completion was lost, or a grant whose
  // recv never came. Every other buffer goes back when its send completes.
  for (Flow& flow : conn.flow) {
    ctx_.pump->release_flow(flow);
    ctx_.pump->release_buffer(flow.granted);
    flow.granted = -1;
  }
  ctx_.intake->forget(id);  // a PROXY header still in pieces dies with its client
  if (conn.backend_index >= 0) count_backend(conn, false);
  if (conn.listener_counted) {
    ctx_.shared.listener_active[conn.listener].fetch_sub(1, std::memory_order_relaxed);
    conn.listener_counted = false;
  }
  if (conn.source_table != nullptr) {
    conn.source_table->release(conn.source);
    conn.source_table = nullptr;
  }
  ctx_.snapshots->release(conn.snap);
  conn.snap = nullptr;
  conn.state = State::kFree;
  ++conn.gen;
  free_.push_back(id);
  --ctx_.live;
  ctx_.stats.active.set(ctx_.live);
  ctx_.slot.active.store(ctx_.live, std::memory_order_relaxed);
  ctx_.stats.close(conn.closed_as).add();
}

void Lifecycle::count_backend(Conn& conn, bool on) {
  if (conn.counted == on) return;
  conn.counted = on;
  auto& active = conn.snap->snapshot->backends[static_cast<size_t>(conn.backend_index)].state->active;
  active.fetch_add(on ? 1 : -1, std::memory_order_relaxed);
}

void Lifecycle::rearm_timer(uint32_t id) {
  const Conn& conn = ctx_.conns[id];
  if (conn.state == State::kClosing || conn.state == State::kFree) return;
  const Deadline d = next_deadline(conn, timeouts_for(conn));
  if (d.at_ns == UINT64_MAX) return;
  worker::TimerWheel& timers = *ctx_.timers;
  if (!timers.scheduled(id) || d.at_ns < timers.deadline(id)) timers.schedule(id, d.at_ns);
}

void Lifecycle::on_timer(uint32_t id) {
  Conn& conn = ctx_.conns[id];
  if (conn.state == State::kClosing) {
    // Only armed after lost completions: stop waiting for them.
    fprintf(stderr, "ringlb: worker %u: connection %u freed with %u completions unaccounted for\n",
            ctx_.index, id, conn.inflight);
    conn.inflight = 0;
    return maybe_finish(id);
  }
  if (conn.state == State::kFree) return;
  const Timeouts t = timeouts_for(conn);
  const Deadline expired = expired_deadline(conn, t, ctx_.now_ns);
  if (expired.at_ns != UINT64_MAX) return close(id, expired.reason);
  const Deadline next = next_deadline(conn, t);
  if (next.at_ns != UINT64_MAX) ctx_.timers->schedule(id, next.at_ns);
}

void Lifecycle::close_grace(uint32_t id) {
  ctx_.timers->schedule(id, ctx_.conns[id].closing_ns + kLostCompletionGraceNs);
}

void Lifecycle::close_all(CloseReason reason) {
  for (uint32_t id = 0; id < ctx_.conns.size(); ++id) {
    const State s = ctx_.conns[id].state;
    if (s != State::kFree && s != State::kClosing) close(id, reason);
  }
}

}  // namespace ringlb::proxy
