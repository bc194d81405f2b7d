// RAII owner of one io_uring instance.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <deque>

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

// SQEs go to the kernel in the order sqe() handed them out, and none is lost when submitting
// fails: while the SQ is full and the kernel refuses a submission, sqe() hands out entries of a
// spill queue instead, which the next submit(), submit_and_wait_one() or reserve() copies into the
// SQ, in order, before anything else is submitted. Prepare SQEs only through sqe(): one taken
// straight from get() would overtake the spill.
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
  unsigned sq_entries() const { return ring_.sq.ring_entries; }
  unsigned cq_entries() const { return ring_.cq.ring_entries; }

  // Never null. When the SQ is full it submits what is queued first; if that submission fails,
  // the SQE comes from the spill queue (and so do the following ones until the spill is drained).
  // The pointer stays valid until the next submit(), submit_and_wait_one() or reserve().
  io_uring_sqe* sqe();

  // Makes room for n SQEs in one submission batch: the next n calls to sqe() never submit in
  // between, so a link chain prepared with them arrives whole. n <= the SQ size (larger n is
  // clamped: such a chain cannot arrive whole). If the SQ lacks room it submits first; if that
  // fails, all n SQEs come from the spill queue, which later moves them into the SQ together.
  void reserve(unsigned n);

  // Drains the spill queue into the SQ and submits everything queued. The number of SQEs the
  // kernel took, or -errno from a failed submission (the SQEs stay queued for the next call):
  // -EBUSY/-EAGAIN the kernel is short of memory or has completions on its overflow list (reap,
  // then submit again); -EBADFD the ring is disabled; -EEXIST another thread owns the ring.
  int submit();

  // One event-loop wait: drains the spill, submits what is queued and waits for at least one
  // completion. 0 when the caller should reap and call again:
  //   -EINTR, -ETIME  the wait was interrupted: not an error;
  //   -EBUSY, -EAGAIN the kernel could not take the submission now (counted in submit_errors());
  //                   returns once a completion can be reaped (or after a short back-off), since
  //                   reaping is what frees the kernel's memory and overflow list;
  // otherwise -errno, which the caller must handle:
  //   -EBADR          the kernel dropped completions (cq_dropped() grew): whatever waited for them
  //                   never hears back; the caller must recover (re-arm, time out, restart);
  //   others (-EBADFD, -EEXIST, ...) a misused ring.
  // With `timeout_ns`, the wait ends after that long even if nothing completed (0 then too): the
  // caller's own timers are due. It takes no SQE (EXT_ARG, 5.11+); a kernel without EXT_ARG waits
  // as without a timeout.
  int submit_and_wait_one(const uint64_t* timeout_ns = nullptr);

  // Failed submissions so far (any path), for metrics.
  uint64_t submit_errors() const { return submit_errors_; }
  // SQEs waiting in the spill queue.
  size_t spilled() const { return spill_.size(); }
  // Completions the kernel dropped because it could not even keep them on its overflow list.
  uint32_t cq_dropped() const { return IO_URING_READ_ONCE(*ring_.cq.koverflow); }
  // Completions wait on the kernel's overflow list: the CQ was full. They move into the CQ when
  // this thread next enters the kernel after reaping.
  bool cq_overflow_pending() const {
    return (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_CQ_OVERFLOW) != 0;
  }

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
  // io_uring_submit, counting failures. Count submitted or -errno.
  int submit_queued();
  // Copies spilled SQEs into the SQ in order, submitting whenever the next chain does not fit,
  // so a chain is never split. Count submitted meanwhile, or -errno when a submission failed.
  int drain_spill();

  io_uring ring_{};
  bool initialized_ = false;
  // deque: emplace_back keeps earlier elements in place, so handed-out pointers stay valid.
  std::deque<io_uring_sqe> spill_;
  unsigned reserved_ = 0;       // sqe() calls left that reserve() promised one batch
  bool reserve_spills_ = false;  // where those go: the spill, or room reserve() made in the SQ
  uint64_t submit_errors_ = 0;
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
