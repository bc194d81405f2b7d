// RAII owner of one io_uring instance.
#pragma once

#include <liburing.h>

#include <cstdint>

namespace ringlb::uring {

struct RingOptions {
  unsigned entries = 256;
  // 0 = kernel default (2 x entries). Workers size it generously: a message from the acceptor that
  // finds the CQ full goes to the overflow list, which costs a slow path.
  unsigned cq_entries = 0;
  // SINGLE_ISSUER binds the ring to the creating thread; create each worker's ring in its thread.
  bool single_issuer = true;
  // DEFER_TASKRUN runs completions only when this thread enters the kernel: fewer interruptions.
  bool defer_taskrun = true;
  // A disabled ring can be created here and enabled (and so owned) by another thread, or never
  // enabled at all: the buffer template ring is such a ring.
  bool disabled = false;
};

class Ring {
 public:
  Ring() = default;
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // 0 or -errno.
  int init(const RingOptions& options);
  // Enables a ring made with `disabled`; the calling thread becomes its single issuer.
  int enable();

  bool initialized() const { return initialized_; }
  io_uring* get() { return &ring_; }
  int fd() const { return ring_.ring_fd; }

  // Never null: when the SQ is full it submits what is queued first.
  io_uring_sqe* sqe();
  // Guarantees that the next `n` sqe() calls land in one submission batch (submitting what is
  // queued first if fewer than `n` entries are free), so a link chain is never split.
  void reserve(unsigned n);
  int submit() { return io_uring_submit(&ring_); }

  // One event-loop wait: submits what is queued and waits for at least one completion.
  // Interruptions and timeouts are not errors here. 0 or -errno.
  int submit_and_wait_one();

  // Hands every completion in the CQ to `handle` (including any that arrive meanwhile) and
  // advances the CQ once for the whole batch.
  template <typename Handle>
  unsigned reap(Handle&& handle) {
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      handle(static_cast<const io_uring_cqe*>(cqe));
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
    return seen;
  }

  // Slow paths and tests only: submits what is queued and waits for the CQE whose user_data is
  // `user_data`, returning its res. CQEs for other user_data seen meanwhile are dropped, so use it
  // only on a ring with nothing else in flight.
  int wait_for(uint64_t user_data);

 private:
  io_uring ring_{};
  bool initialized_ = false;
};

// Prepares one SQE with `prep`, submits it and waits for its result (slow paths and tests only).
template <typename Prep>
int run_one(Ring& ring, Prep&& prep) {
  constexpr uint64_t kSyncTag = 0x5359'4e43'0000'0001ULL;  // "SYNC": distinct from data-path tags
  io_uring_sqe* sqe = ring.sqe();
  prep(sqe);
  sqe->user_data = kSyncTag;
  return ring.wait_for(kSyncTag);
}

}  // namespace ringlb::uring
