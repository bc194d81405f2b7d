#include "server/accept/acceptor.h"

#include <sys/socket.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "server/base/clock.h"
#include "server/uring/compat.h"
#include "server/control/service_notify.h"
#include "server/base/log.h"

namespace ringlb {
namespace {

using metrics::Op;

// One hand-off in this many posts its success completion, so msg_ring latency is measured.
constexpr uint32_t kSampleEvery = 64;
// In a kMsgRing index, beside the slot: this hand-off was sent without a target completion
// (RINGLB_FAULT_LOST_HANDOFF_EVERY), so its success stands for a msg_ring -EOVERFLOW.
constexpr uint32_t kLostInjected = 1u << 23;

}  // namespace

uint32_t Acceptor::env_count(const char* name) {
  const char* text = getenv(name);
  if (text == nullptr) return 0;
  char* end = nullptr;
  const unsigned long n = strtoul(text, &end, 10);
  return end != text && *end == '\0' && n < (1ul << 20) ? static_cast<uint32_t>(n) : 0;
}

Acceptor::Acceptor(SharedState& shared)
    : shared_(shared),
      stats_(shared.registry->acceptor),
      control_(shared, ring_, shared.registry->acceptor),
      fault_lost_every_(env_count("RINGLB_FAULT_LOST_HANDOFF_EVERY")),
      fault_fail_every_(env_count("RINGLB_FAULT_HANDOFF_FAIL_EVERY")) {
  control_.set_on_handed_over([this] { begin_drain(); });
}

void Acceptor::arm_accept(uint32_t listener) {
  if (listeners_[listener].armed == false) {
    listeners_[listener].armed = true;
    ++accepts_armed_;
  }
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_multishot_accept_direct(sqe, listeners_[listener].slot, nullptr, nullptr, 0);
  sqe->flags |= IOSQE_FIXED_FILE;
  sqe->user_data = data(Tag::kAccept, listener);
  listeners_[listener].last_stamp_us = now_us_;
}

void Acceptor::handle(const io_uring_cqe* cqe) {
  const uint64_t ud = cqe->user_data;
  const uint32_t index = index_of(ud);
  switch (tag_of(ud)) {
    case Tag::kAccept:
      on_accept(index, cqe->res, cqe->flags);
      break;
    case Tag::kMsgRing:
      stats_.op(Op::k_msg_ring).observe_ns(elapsed_ns_since(time_of(ud), now_ns_));
      on_msg_ring_done(index, cqe->res);
      break;
    case Tag::kQuietCloseAccepted:
      // -ECANCELED: the msg_ring before it failed and kept the slot open for a retry.
      if (cqe->res >= 0) stats_.op(Op::k_close).observe_ns(elapsed_ns_since(time_of(ud), now_ns_));
      break;
    case Tag::kLostHandoffChained:
      // -ECANCELED: the hand-off before it failed, and is retried; otherwise the worker has
      // the descriptor but not the message, and the close after it was cancelled.
      if (cqe->res != -ECANCELED) {
        const Pending& p = pending_[index];
        close_slot(static_cast<int>(index));
        tell_lost({p.worker, p.listener});
      }
      break;
    case Tag::kLostHandoffMessage:
      on_lost_message_done(index, cqe->res);
      break;
    case Tag::kDrainNotify:
      --in_flight_;
      break;
    case Tag::kSignal:
      on_signal(cqe->res, signal_fd_);
      break;
    default:
      control_.handle(cqe, now_us_);
      break;
  }
}

int Acceptor::run(int signal_fd) {
  signal_fd_ = signal_fd;
  now_ns_ = monotonic_ns();
  now_us_ = micros32(now_ns_);
  for (uint32_t i = 0; i < listeners_.size(); ++i) arm_accept(i);
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_read(sqe, signal_fd, &siginfo_, sizeof(siginfo_), 0);
  sqe->user_data = data(Tag::kSignal, 0);
  control_.serve_in_process();

  for (;;) {
    if (int ret = ring_.submit_and_wait_one(); ret < 0) {
      log(LogLevel::kError, "acceptor: io_uring_submit_and_wait: %s", strerror(-ret));
    }
    now_ns_ = monotonic_ns();
    now_us_ = micros32(now_ns_);
    ring_.reap([&](const io_uring_cqe* cqe) { handle(cqe); });
    // Then a reload, and the completions its own operations reaped while it waited for theirs.
    for (;;) {
      if (reload_pending_) {
        reload_pending_ = false;
        reload_();
        continue;
      }
      if (deferred_.empty()) break;
      std::vector<io_uring_cqe> batch;
      batch.swap(deferred_);
      for (const io_uring_cqe& cqe : batch) handle(&cqe);
    }
    // Outside the reap: a message that failed is retried on the next iteration, not at once.
    send_lost_handoffs();
    if (draining_ && !drain_sent_ && accepts_armed_ == 0) {
      // Every multishot accept has posted its last completion and every connection it took was
      // handed off (hand-offs are issued when submitted), so these messages queue behind them in
      // each worker: the workers see every connection before they start counting down to zero.
      for (const auto& w : shared_.workers) {
        io_uring_sqe* s = ring_.sqe();
        uring::prep_msg_ring_data(s, w->ring_fd, 0, encode(Tag::kControl, kControlDrain, now_us_));
        s->user_data = data(Tag::kDrainNotify, 0);
        ++in_flight_;
      }
      drain_sent_ = true;
      control_.accepts_stopped();
    }
    if (drain_sent_ && in_flight_ == 0 && lost_in_flight_.size() == lost_free_.size() &&
        control_.idle()) {
      break;
    }
  }
  return 0;
}

void Acceptor::on_signal(int res, int signal_fd) {
  const bool stop = res == sizeof(signalfd_siginfo) &&
                    (siginfo_.ssi_signo == SIGTERM || siginfo_.ssi_signo == SIGINT);
  if (stop) {
    log(LogLevel::kInfo, "%s: no longer accepting; draining for up to %lldms",
        strsignal(static_cast<int>(siginfo_.ssi_signo)),
        static_cast<long long>(shared_.config.drain_timeout.count()));
    return begin_drain();
  }
  if (res == sizeof(signalfd_siginfo) && siginfo_.ssi_signo == SIGHUP && reload_ && !draining_) {
    reload_pending_ = true;  // after the reap: a reload may wait for its own completions
  }
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_read(sqe, signal_fd, &siginfo_, sizeof(siginfo_), 0);
  sqe->user_data = data(Tag::kSignal, 0);
}

void Acceptor::on_accept(uint32_t listener, int res, uint32_t flags) {
  Listener& l = listeners_[listener];
  // For a multishot accept, the latency of each completion is measured from the previous one.
  if (shared_.config.metrics_enabled) {
    stats_.op(Op::k_accept).observe_ns(elapsed_ns_since(l.last_stamp_us, now_ns_));
  }
  l.last_stamp_us = now_us_;
  if (!(flags & IORING_CQE_F_MORE)) {
    if (draining_ || l.removed) {
      listeners_[listener].armed = false;
      --accepts_armed_;  // cancelled: this listener's accepts are over
    } else {
      arm_accept(listener);
    }
  }
  if (res < 0) {
    if (res != -ECANCELED) stats_.accept_errors.add();
    return;
  }
  stats_.accepted.add();
  if (listener < shared_.registry->listener_accepted.size()) shared_.registry->listener_accepted[listener].add();
  // Accepted before the cancel took effect (during a drain, or a takeover): the client is
  // connected, so it is served like any other, within the drain deadline.
  const uint64_t limit = shared_.config.max_connections;
  if (shared_.active_connections() >= limit) {
    stats_.rejected_max_connections.add();
    return close_slot(res);
  }
  dispatch(res, Pending{now_us_, 0, 0, listener}, -1);
}

void Acceptor::dispatch(int slot, const Pending& pending, int not_worker) {
  const unsigned n = static_cast<unsigned>(shared_.workers.size());
  int chosen = -1;
  for (unsigned i = 0; i < n; ++i) {
    const unsigned w = (next_worker_ + i) % n;
    const WorkerSlot& ws = *shared_.workers[w];
    if (static_cast<int>(w) == not_worker && n > 1) continue;
    if (ws.stopped.load(std::memory_order_relaxed)) continue;
    if (ws.active.load(std::memory_order_relaxed) >= ws.capacity) continue;  // full: skip it
    chosen = static_cast<int>(w);
    break;
  }
  if (chosen < 0) {
    stats_.rejected_max_connections.add();
    return close_slot(slot);
  }
  next_worker_ = (static_cast<unsigned>(chosen) + 1) % n;
  Pending& p = pending_[static_cast<size_t>(slot)];
  p = pending;
  p.worker = static_cast<uint16_t>(chosen);
  int target = shared_.workers[static_cast<size_t>(chosen)]->ring_fd;
  bool lose_completion = false;
  if (pending.tries == 0) {
    ++handoffs_;
    if (fault_fail_every_ != 0 && handoffs_ % fault_fail_every_ == 0) {
      target = ring_.fd();  // the kernel refuses a msg_ring to its own ring: -EINVAL
    } else if (fault_lost_every_ != 0 && handoffs_ % fault_lost_every_ == 0) {
      lose_completion = true;
    }
  }
  // msg_ring, then (linked) close of our own slot: the worker holds its own reference once the
  // message is sent. On success neither posts a completion, so a hand-off costs the acceptor no
  // CQE; on failure the close is cancelled and the slot stays ours for a retry. The chain must
  // reach the kernel in one submission: split by a full SQ, the close would run on its own,
  // even after a failed msg_ring, and the retry would send a closed (or reused) slot.
  const bool sample = shared_.config.metrics_enabled && ++sample_ % kSampleEvery == 0;
  ring_.reserve(lose_completion ? 3 : 2);
  io_uring_sqe* sqe = ring_.sqe();
  uring::prep_msg_ring_fd_alloc(sqe, target, slot, encode(Tag::kHandoff, p.listener, p.accept_us),
                                lose_completion ? IORING_MSG_RING_CQE_SKIP : 0);
  sqe->flags |= IOSQE_IO_LINK | (sample || lose_completion ? 0 : IOSQE_CQE_SKIP_SUCCESS);
  sqe->user_data = data(Tag::kMsgRing, static_cast<uint32_t>(slot) | (lose_completion ? kLostInjected : 0));
  if (lose_completion) {
    // The state a msg_ring -EOVERFLOW leaves: the worker has the descriptor in a slot it chose
    // and no completion for it. Linked, the message runs only once the descriptor is installed
    // (a msg_ring completes for the sender after the target's install), so the worker's audit
    // can find it.
    sqe = ring_.sqe();
    uring::prep_msg_ring_data(sqe, target, 0, encode(Tag::kLostHandoff, p.listener, now_us_));
    sqe->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
    sqe->user_data = data(Tag::kLostHandoffChained, static_cast<uint32_t>(slot));
  }
  sqe = ring_.sqe();
  io_uring_prep_close_direct(sqe, static_cast<unsigned>(slot));
  sqe->flags |= sample ? 0 : IOSQE_CQE_SKIP_SUCCESS;
  sqe->user_data = data(Tag::kQuietCloseAccepted, static_cast<uint32_t>(slot));
}

void Acceptor::on_msg_ring_done(uint32_t index, int res) {
  const int slot = static_cast<int>(index & ~kLostInjected);
  if (res < 0) return on_msg_ring_failed(slot, res);
  // An injected lost completion succeeded: count it as the -EOVERFLOW it stands for (the
  // message and the close linked behind it do the rest).
  if (index & kLostInjected) stats_.handoff_failed(EOVERFLOW);
}

void Acceptor::on_msg_ring_failed(int slot, int res) {
  const Pending p = pending_[static_cast<size_t>(slot)];
  stats_.handoff_failed(-res);
  if (res == -EOVERFLOW) {
    // The worker got the descriptor, in a slot it picked, but no completion for it: sending it
    // again would serve the client twice. Our own reference goes (the linked close was
    // cancelled), and the worker is told to look for the descriptor it does not know about.
    close_slot(slot);
    return tell_lost({p.worker, p.listener});
  }
  // Other errors left the worker without it: try another.
  const bool retry = p.tries + 1u < shared_.workers.size() && !draining_;
  if (retry) {
    stats_.handoff_retries.add();
    Pending again = p;
    ++again.tries;
    return dispatch(slot, again, p.worker);
  }
  close_slot(slot);
}

void Acceptor::send_lost_handoffs() {
  for (const LostHandoff& lost : lost_unsent_) {
    uint32_t id;
    if (!lost_free_.empty()) {
      id = lost_free_.back();
      lost_free_.pop_back();
      lost_in_flight_[id] = lost;
    } else {
      id = static_cast<uint32_t>(lost_in_flight_.size());
      lost_in_flight_.push_back(lost);
    }
    // Rare: its completion is always posted, so a failure is retried and the drain waits for it.
    io_uring_sqe* sqe = ring_.sqe();
    uring::prep_msg_ring_data(sqe, shared_.workers[lost.worker]->ring_fd, 0,
                              encode(Tag::kLostHandoff, lost.listener, now_us_));
    sqe->user_data = data(Tag::kLostHandoffMessage, id);
  }
  lost_unsent_.clear();
}

void Acceptor::on_lost_message_done(uint32_t id, int res) {
  const LostHandoff lost = lost_in_flight_[id];
  lost_free_.push_back(id);
  // -EOWNERDEAD / -EBADFD: the worker is gone, and its descriptors with it.
  if (res < 0 && res != -EOWNERDEAD && res != -EBADFD) tell_lost(lost);
}

void Acceptor::close_slot(int slot) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_close_direct(sqe, static_cast<unsigned>(slot));
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  sqe->user_data = data(Tag::kQuietCloseAccepted, static_cast<uint32_t>(slot));
}

void Acceptor::begin_drain() {
  if (draining_) return;
  draining_ = true;
  control_.set_draining();
  service::stopping("draining " + std::to_string(shared_.active_connections()) + " connections for up to " +
                    std::to_string(shared_.config.drain_timeout.count()) + "ms");
  for (const Listener& l : listeners_) {
    if (l.removed) continue;  // stopped by a reload: its slot may hold a client by now
    // Stop the multishot accept, then close the listening socket: new clients are refused.
    io_uring_sqe* sqe = ring_.sqe();
    io_uring_prep_cancel_fd(sqe, l.slot, IORING_ASYNC_CANCEL_FD_FIXED | IORING_ASYNC_CANCEL_ALL);
    sqe->user_data = data(Tag::kDrainNotify, 0);
    ++in_flight_;
    sqe = ring_.sqe();
    io_uring_prep_close_direct(sqe, static_cast<unsigned>(l.slot));
    sqe->user_data = data(Tag::kDrainNotify, 0);
    ++in_flight_;
  }
}

}  // namespace ringlb
