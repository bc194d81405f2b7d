#include "server/proxy/pump.h"

#include <liburing.h>

#include <cerrno>

#include "server/proxy/snapshot_ref.h"

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;

Tag recv_tag(Dir dir) { return dir == kUp ? Tag::kPumpRecvClient : Tag::kPumpRecvBackend; }

}  // namespace

Pump::Pump(Env& env, Io& io, Extras& extras)
    : env_(env),
      io_(io),
      extras_(extras),
      next_(env.config.buffers_per_worker, -1),
      lens_(env.config.buffers_per_worker, 0) {}

Step Pump::start(Session& s) {
  s.last_active_ns = env_.now_ns;
  // Bandwidth limits: the listener's (set when it arrived) and its cluster's, the lower of them.
  const balancer::Snapshot& cluster = *s.snap->snapshot;
  for (Dir dir : {kUp, kDown}) {
    TokenBucket& bucket = s.rate[dir].bucket;
    const uint64_t rate = combined_rate(bucket.rate(), dir == kUp ? cluster.upload_rate : cluster.download_rate);
    bucket.start(rate, env_.config.buffer_size, env_.now_ns);
  }
  // Clients usually speak first and may have already; the backend has nothing to say yet.
  s.flow[kUp].expect_data = true;
  for (const Dir dir : {kUp, kDown}) {
    // Records that came right behind a TLS handshake, still in their recv buffer.
    TlsSide* src = source_tls(s, dir);
    if (src != nullptr && src->held >= 0) {
      const int32_t held = src->held;
      src->held = -1;
      if (Step step = decrypted(s, dir, held, 0); step.kind != Step::Kind::kWait) return step;
    }
  }
  for (const Dir dir : {kUp, kDown}) {
    // Whatever a stream still has to say (a TLS 1.3 ticket) goes out first.
    if (sink_tls(s, dir) != nullptr && !s.flow[dir].sending && !send_tls(s, dir)) {
      return Step::close(CloseReason::k_tls_protocol);
    }
    maybe_arm(s, dir);
  }
  return Step::wait();
}

void Pump::arm(Session& s, Dir dir) {
  Flow& flow = s.flow[dir];
  flow.recv_armed = true;
  // A granted buffer takes one recv that names it; multishot recvs pick from the provided ring.
  // A TLS source's recv leaves room for a record begun in the last one (pump_tls.cc).
  const bool tls = source_tls(s, dir) != nullptr;
  flow.multishot = env_.config.recv_multishot && flow.granted < 0 && !tls;
  RecvSpec spec;
  if (tls) spec.len = env_.config.buffer_size - kTlsRecordRoom;
  if (flow.multishot) {
    spec.multishot = true;
    // A byte budget (kernel 6.17's multishot limit): the recv ends by itself, without
    // IORING_CQE_F_MORE, once it has taken what the flow's free buffers hold. Without it the
    // kernel may fill dozens of buffers before a cancel lands.
    spec.budget = (env_.config.flow_buffers - flow.queued) * env_.config.buffer_size;
  }
  // Rate-limited: the recv takes at most what the bucket holds (maybe_arm waited for a quantum).
  if (TokenBucket& bucket = s.rate[dir].bucket; bucket.limited()) {
    const uint64_t allowed = bucket.available(env_.now_ns);
    const uint32_t cap = spec.len != 0 ? spec.len : env_.config.buffer_size;
    if (allowed < cap) spec.len = static_cast<uint32_t>(allowed);
    if (flow.multishot && allowed < spec.budget) spec.budget = static_cast<uint32_t>(allowed);
  }
  const uint64_t data = io_.recv(s, dir, recv_tag(dir), spec);
  if (flow.multishot) flow.recv_data = data;
}

void Pump::maybe_arm(Session& s, Dir dir) {
  const Flow& flow = s.flow[dir];
  if (flow.recv_armed || flow.eof || flow.eof_pending || flow.waiting || s.rate[dir].held()) return;
  if (flow.queued >= env_.config.flow_buffers) return;
  if (hold(s, dir)) return;
  arm(s, dir);
}

bool Pump::hold(Session& s, Dir dir) {
  RateLimit& limit = s.rate[dir];
  TokenBucket& bucket = limit.bucket;
  if (!bucket.limited()) return false;
  const uint64_t quantum = bucket.quantum();
  if (bucket.available(env_.now_ns) >= quantum) return false;
  // The driver's timer lets it go (on_resume) once the bucket holds a quantum: no polling.
  limit.held_since_ns = env_.now_ns;
  limit.held_until_ns = bucket.ready_at(quantum, env_.now_ns);
  // A buffer granted meanwhile goes to someone else: a held flow keeps none.
  Flow& flow = s.flow[dir];
  io_.release(flow.granted);
  flow.granted = -1;
  return true;
}

Step Pump::on_resume(Session& s, Dir dir) {
  RateLimit& limit = s.rate[dir];
  if (!limit.held() || limit.held_until_ns > env_.now_ns) return Step::wait();
  count_held(s, dir);
  maybe_arm(s, dir);
  return Step::wait();
}

void Pump::count_held(Session& s, Dir dir) {
  RateLimit& limit = s.rate[dir];
  env_.stats.rate_limited(s.listener, dir == kDown).add(env_.now_ns - limit.held_since_ns);
  limit.held_since_ns = limit.held_until_ns = 0;
}

bool Pump::send_head(Session& s, Dir dir) {
  if (sink_tls(s, dir) != nullptr) return send_tls(s, dir);
  Flow& flow = s.flow[dir];
  flow.sending = true;
  io_.send_buffer(s, dir, dir == kUp ? Tag::kPumpSendBackend : Tag::kPumpSendClient, flow.buf, flow.off,
                  flow.len - flow.off);
  return true;
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

void Pump::release_flows(Session& s) {
  for (Flow& flow : s.flow) {
    while (flow.queued > 0) io_.release(dequeue(flow));
  }
  for (Dir dir : {kUp, kDown}) {
    if (s.rate[dir].held()) count_held(s, dir);  // closed while held: the time until now
  }
}

Step Pump::on_completion(Session& s, const Completion& c) {
  switch (static_cast<Tag>(c.tag)) {
    case Tag::kPumpRecvClient: return on_recv(s, kUp, c);
    case Tag::kPumpRecvBackend: return on_recv(s, kDown, c);
    case Tag::kPumpSendBackend: return on_send(s, kUp, c.res);
    case Tag::kPumpSendClient: return on_send(s, kDown, c.res);
    case Tag::kPumpShutdown: return on_shutdown(s);
    case Tag::kPumpCancel: return Step::wait();  // the recv it stopped reports -ECANCELED
    default: return Step::close(CloseReason::k_error);
  }
}

Step Pump::on_recv(Session& s, Dir dir, const Completion& c) {
  Flow& flow = s.flow[dir];
  // A multishot recv stays armed while its completions say MORE.
  if (!(c.flags & IORING_CQE_F_MORE)) flow.recv_armed = flow.cancelling = false;
  const int res = c.res;
  if (flow.eof || flow.eof_pending) {
    // After TLS's close_notify: the rest (the FIN, or bytes past it) means nothing.
    io_.release(c.buf);
    return Step::wait();
  }
  if (res > 0) {
    flow.expect_data = (c.flags & IORING_CQE_F_SOCK_NONEMPTY) != 0;
    s.rate[dir].bucket.take(static_cast<uint64_t>(res));  // as received: ciphertext on a TLS side
    if (TlsSide* src = source_tls(s, dir)) {
      src->stream->feed(io_.buffer(c.buf), static_cast<size_t>(res));
      return decrypted(s, dir, c.buf, c.flags);
    }
    return received(s, dir, c.buf, static_cast<uint32_t>(res), c.flags);
  }
  io_.release(c.buf);
  if (res == 0) {
    if (TlsSide* src = source_tls(s, dir)) src->stream->feed_eof();
    return source_eof(s, dir);
  }
  if (res == -ENOBUFS) {
    // With bytes queued it is armed again once the chain drains (and waits for a buffer then).
    if (flow.queued == 0 && !io_.wait_for_buffer(s, dir)) maybe_arm(s, dir);
    return Step::wait();
  }
  if (res == -ECANCELED) {  // stopped for back-pressure
    maybe_arm(s, dir);
    return Step::wait();
  }
  return Step::close(close_reason_for(res));
}

Step Pump::received(Session& s, Dir dir, int32_t buf, uint32_t len, uint32_t cqe_flags) {
  Flow& flow = s.flow[dir];
  (void)cqe_flags;
  enqueue(flow, buf, len);
  s.last_active_ns = env_.now_ns;
  s.bytes[dir] += len;
  metrics::BackendStats& backend = env_.stats.backends[s.backend_id];
  (dir == kUp ? backend.bytes_to_backend : backend.bytes_from_backend).add(len);
  if (!flow.sending && !send_head(s, dir)) return Step::close(CloseReason::k_tls_protocol);
  if (!flow.recv_armed) {
    if (flow.multishot) env_.stats.recv_ended.add();  // the kernel ended it: arm another
    maybe_arm(s, dir);
    return Step::wait();
  }
  // The chain is full: stop receiving until the reader catches up.
  if (flow.queued >= env_.config.flow_buffers && !flow.cancelling) {
    flow.cancelling = true;
    env_.stats.recv_stopped.add();
    io_.cancel(s, flow.recv_data);
  }
  return Step::wait();
}

Step Pump::source_eof(Session& s, Dir dir) {
  Flow& flow = s.flow[dir];
  // FIN: passed on once every byte received before it has been sent.
  if (flow.queued == 0 && !flow.sending) return forward_eof(s, dir);
  flow.eof_pending = true;
  return Step::wait();
}

Step Pump::forward_eof(Session& s, Dir dir) {
  Flow& flow = s.flow[dir];
  if (tls_goodbye(s, dir)) {
    flow.eof_pending = true;  // the FIN follows once the close_notify is out
    return Step::wait();
  }
  if (!s.half_closed()) s.first_eof = dir == kUp ? CloseReason::k_client_eof : CloseReason::k_backend_eof;
  flow.eof = true;
  flow.eof_pending = false;
  s.last_active_ns = env_.now_ns;  // the fin timeout counts from the FIN
  // Both sides are done: the close that follows sends this FIN, no shutdown needed.
  if (s.flow[kUp].eof && s.flow[kDown].eof) return done_if_both_eof(s);
  // Half-close: pass the FIN on and keep the other direction flowing. The kernel runs SHUTDOWN
  // from io-wq and looks the slot up only then, so it is waited for like any other op.
  io_.shutdown_write(s, dir);
  return Step::wait();
}

Step Pump::done_if_both_eof(const Session& s) const {
  if (s.flow[kUp].eof && s.flow[kDown].eof) return Step::finish(s.first_eof);
  return Step::wait();
}

Step Pump::on_send(Session& s, Dir dir, int res) {
  if (sink_tls(s, dir) != nullptr) return on_tls_sent(s, dir, res);
  Flow& flow = s.flow[dir];
  flow.sending = false;
  if (res <= 0) return Step::close(close_reason_for(res));
  s.last_active_ns = env_.now_ns;
  flow.off += static_cast<uint32_t>(res);
  if (flow.off < flow.len) {
    send_head(s, dir);  // short write: send the rest, in order
    return Step::wait();
  }
  // Others waited for a buffer: the one just freed went to the oldest of them, and this flow
  // queues behind them rather than overtake.
  const bool to_waiter = io_.release(dequeue(flow));
  if (flow.queued > 0) {
    send_head(s, dir);
  } else if (flow.eof_pending) {
    return forward_eof(s, dir);
  }
  if (flow.recv_armed) return Step::wait();
  if (to_waiter && flow.queued == 0 && io_.wait_for_buffer(s, dir)) return Step::wait();
  maybe_arm(s, dir);
  return Step::wait();
}

Step Pump::on_shutdown(Session& s) { return done_if_both_eof(s); }

Step Pump::on_buffer(Session& s, Dir dir) {
  maybe_arm(s, dir);
  return Step::wait();
}

}  // namespace ringlb::proxy
