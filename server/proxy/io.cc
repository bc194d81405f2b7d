#include "server/proxy/io.h"

#include <liburing.h>
#include <sys/socket.h>

#include "server/proxy/tags.h"

namespace ringlb::proxy {

uint64_t Io::data(const Session& s, Tag tag) const {
  return encode(tag, session_index(s.id, s.gen), env_.now_us);
}

void Io::peer_name(Session& s, Tag tag) {
  // The length must be exactly the family's sockaddr size.
  const int family = env_.shared.routes[s.listener].family;
  ops_.peer_name(s.client, &s.peer, family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in), data(s, tag));
  ++s.inflight;
}

uint64_t Io::recv(Session& s, Dir dir, Tag tag, RecvSpec spec) {
  const Flow& flow = s.flow[dir];
  spec.into = flow.granted;
  if (spec.len == 0) spec.len = env_.config.buffer_size;
  spec.poll_first = !flow.expect_data;
  const uint64_t d = data(s, tag);
  ops_.recv(dir == kUp ? s.client : s.backend, spec, d);
  ++s.inflight;  // a multishot recv: until its last completion, the one without MORE
  return d;
}

void Io::recv_exact(Session& s, Tag tag, void* dst, uint32_t len) {
  ops_.recv_exact(s.client, dst, len, data(s, tag));
  ++s.inflight;
}

void Io::send_buffer(Session& s, Dir dir, Tag tag, int32_t buf, uint32_t off, uint32_t len) {
  ops_.send_buffer(dir == kUp ? s.backend : s.client, buf, off, len, data(s, tag));
  ++s.inflight;
}

void Io::send(Session& s, Dir dir, Tag tag, const void* bytes, uint32_t len) {
  ops_.send(dir == kUp ? s.backend : s.client, bytes, len, data(s, tag));
  ++s.inflight;
}

void Io::open_socket(Session& s, int family) {
  ops_.open_socket(family, data(s, Tag::kConnectSocket));
  ++s.inflight;
}

void Io::connect(Session& s, const Address& to, const __kernel_timespec* timeout) {
  ops_.connect(s.backend, to, timeout, data(s, Tag::kConnect));
  ++s.inflight;
}

void Io::set_recv_lowat(Session& s, const int* value, bool before_next) {
  ops_.set_recv_lowat(s.client, value, before_next);
}

void Io::shutdown_write(Session& s, Dir dir) {
  shutdowns_.push_back({s.id, static_cast<uint8_t>(dir), s.gen});
  ++s.inflight;
}

void Io::cancel(Session& s, uint64_t target) {
  ops_.cancel(target, data(s, Tag::kPumpCancel));
  ++s.inflight;
}

void Io::close_backend(Session& s) {
  if (s.backend < 0) return;
  ops_.close(s.backend);
  env_.stats.open_slots.sub();
  s.backend = -1;
}

void Io::submit_deferred() {
  // SHUTDOWNs go last in the batch: the io-wq thread that runs one takes the ring's lock to
  // look up the fixed slot, and the lock is free once the worker is done submitting. Queued in
  // between, io-wq spun on the lock (a third of its time at 1000 connections).
  for (const Deferred& d : shutdowns_) {
    const Session& s = sessions_[d.id];
    // Counted in flight when queued, so the session cannot have been freed since, but for a
    // forced free after lost completions: then the shutdown is dropped.
    if (s.gen != d.gen || s.phase == Phase::kFree) continue;
    ops_.shutdown_write(d.dir == kUp ? s.backend : s.client, encode(Tag::kPumpShutdown, session_index(d.id, d.gen), env_.now_us));
  }
  shutdowns_.clear();
}

int32_t Io::take_buffer(uint32_t cqe_flags) {
  if (!(cqe_flags & IORING_CQE_F_BUFFER)) return -1;
  ops_.took_buffer();
  env_.stats.buffers_in_use.add();
  return static_cast<int32_t>(cqe_flags >> IORING_CQE_BUFFER_SHIFT);
}

int32_t Io::take_recv_buffer(Flow& flow, uint32_t cqe_flags) {
  const int32_t taken = take_buffer(cqe_flags);
  if (flow.granted < 0) return taken;
  const int32_t granted = flow.granted;  // a recv into a granted buffer carries no buffer flag
  flow.granted = -1;
  return granted;
}

bool Io::still_waiting(FlowRef ref) const {
  const Session& s = sessions_[ref.id];
  return s.gen == ref.gen && s.flow[ref.dir].waiting &&
         (s.phase == Phase::kPump || s.phase == Phase::kProxyHeader || s.phase == Phase::kClientHello ||
          s.phase == Phase::kTlsAccept || s.phase == Phase::kTlsConnect);
}

bool Io::release(int32_t buf) {
  if (buf < 0) return false;
  FlowRef ref;
  while (ops_.next_waiter(&ref)) {
    if (!still_waiting(ref)) continue;  // closed, or moved on, since it queued
    // Still in use: it is the waiter's now. Its recv goes once this completion is done.
    Flow& flow = sessions_[ref.id].flow[ref.dir];
    flow.waiting = false;
    flow.granted = buf;
    grants_.push_back(ref);
    return true;
  }
  ops_.recycle(buf);
  env_.stats.buffers_in_use.sub();
  return false;
}

bool Io::wait_for_buffer(Session& s, Dir dir) {
  env_.stats.buffer_waits.add();
  if (!ops_.wait_for_buffer({s.id, static_cast<uint8_t>(dir), s.gen})) return false;
  s.flow[dir].waiting = true;
  return true;
}

void Io::enqueue(Session& s) {
  s.queued = true;
  s.queued_ns = env_.now_ns;
  s.queue_ticket = ops_.enqueue(s.id, s.accept_us);
  env_.stats.queued.set(ops_.queued());
}

}  // namespace ringlb::proxy
