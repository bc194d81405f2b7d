#include "server/uring/ring.h"

#include <algorithm>
#include <cerrno>

#include "server/uring/compat.h"

namespace ringlb::uring {
namespace {

// How many SQEs from the front of `spill` form one link chain: up to and including the first SQE
// that does not link to the next (a chain still open at the end counts to the end).
size_t front_chain_length(const std::deque<io_uring_sqe>& spill) {
  size_t n = 1;
  while (n < spill.size() && (spill[n - 1].flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK)) != 0) ++n;
  return n;
}

}  // namespace

Ring::~Ring() {
  if (!initialized_) return;
  // Another thread's ring may be mapped here next (uring/tsan.h).
  mapping_released(ring_.sq.sqes, ring_.sq.ring_entries * sizeof(io_uring_sqe));
  mapping_released(ring_.sq.ring_ptr, ring_.sq.ring_sz);
  mapping_released(ring_.cq.ring_ptr, ring_.cq.ring_sz);
  io_uring_queue_exit(&ring_);
}

int Ring::init(const RingOptions& options) {
  if (initialized_) return -EBUSY;
  io_uring_params params{};
  if (options.cq_entries) {
    params.flags |= IORING_SETUP_CQSIZE;
    params.cq_entries = options.cq_entries;
  }
  if (options.single_issuer) params.flags |= IORING_SETUP_SINGLE_ISSUER;
  if (options.defer_taskrun) params.flags |= IORING_SETUP_DEFER_TASKRUN;
  if (options.disabled) params.flags |= IORING_SETUP_R_DISABLED;
  // Tell the kernel we only look at the CQ when we enter it; cheaper completions otherwise.
  if (!options.defer_taskrun) params.flags |= IORING_SETUP_COOP_TASKRUN;
  params.flags |= IORING_SETUP_SUBMIT_ALL;
  int ret = io_uring_queue_init_params(options.entries, &ring_, &params);
  if (ret < 0) return ret;
  mapping_acquired(ring_.sq.sqes, ring_.sq.ring_entries * sizeof(io_uring_sqe));
  mapping_acquired(ring_.sq.ring_ptr, ring_.sq.ring_sz);
  mapping_acquired(ring_.cq.ring_ptr, ring_.cq.ring_sz);
  initialized_ = true;
  return 0;
}

int Ring::enable() { return enable_rings(&ring_); }

int Ring::submit_queued() {
  // On failure liburing has already published the SQ tail: the SQEs stay in the SQ, in order,
  // and the next io_uring_enter offers them again. Nothing is lost; the SQ just stays full.
  const int ret = io_uring_submit(&ring_);
  if (ret < 0) ++submit_errors_;
  return ret;
}

int Ring::drain_spill() {
  int submitted = 0;
  while (!spill_.empty()) {
    size_t chain = front_chain_length(spill_);
    // A chain longer than the SQ cannot arrive whole whatever we do: move it piece by piece.
    if (chain > sq_entries()) chain = 1;
    if (io_uring_sq_space_left(&ring_) < chain) {
      const int ret = submit_queued();
      if (ret < 0) return ret;
      // The kernel took nothing although the SQ is full: stop rather than spin; retry next call.
      if (ret == 0) return -EAGAIN;
      submitted += ret;
      continue;
    }
    for (; chain > 0; --chain) {
      *io_uring_get_sqe(&ring_) = spill_.front();
      spill_.pop_front();
    }
  }
  return submitted;
}

io_uring_sqe* Ring::sqe() {
  if (reserved_ > 0) {
    // reserve() already chose where the whole chain goes: room in the SQ, or the spill.
    --reserved_;
    if (!reserve_spills_) {
      if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
    }
    return &spill_.emplace_back();
  }
  // Once anything is spilled, everything after it spills too, so the kernel sees sqe() order.
  if (spill_.empty()) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr && submit_queued() >= 0) sqe = io_uring_get_sqe(&ring_);
    if (sqe != nullptr) return sqe;
  }
  // Value-initialised: the same all-zero start io_uring_prep_* expect from the SQ.
  return &spill_.emplace_back();
}

void Ring::reserve(unsigned n) {
  n = std::min(n, sq_entries());
  if (drain_spill() >= 0 && io_uring_sq_space_left(&ring_) < n) submit_queued();
  // Either the whole chain fits in the SQ now, or it all goes to the spill (behind whatever is
  // spilled already) and drain_spill() later moves it into the SQ as one piece.
  reserve_spills_ = !spill_.empty() || io_uring_sq_space_left(&ring_) < n;
  reserved_ = n;
}

int Ring::submit() {
  const int drained = drain_spill();
  if (drained < 0) return drained;
  const int ret = submit_queued();
  return ret < 0 ? ret : drained + ret;
}

int Ring::submit_and_wait_one(const uint64_t* timeout_ns) {
  int ret = drain_spill();  // counts its own failures
  if (ret >= 0) {
    if (timeout_ns != nullptr && (ring_.features & IORING_FEAT_EXT_ARG) != 0) {
      __kernel_timespec ts{};
      ts.tv_sec = static_cast<long long>(*timeout_ns / 1'000'000'000ULL);
      ts.tv_nsec = static_cast<long long>(*timeout_ns % 1'000'000'000ULL);
      io_uring_cqe* cqe = nullptr;
      ret = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    } else {
      ret = io_uring_submit_and_wait(&ring_, 1);
    }
    // Interrupted or timed-out waits submitted nothing and failed nothing: just loop again.
    if (ret >= 0 || ret == -EINTR || ret == -ETIME) return 0;
    ++submit_errors_;
  }
  if (ret != -EBUSY && ret != -EAGAIN) return ret;
  // "Reap first": the kernel wants its CQ (and overflow list) emptied or memory back. Wait,
  // without submitting, until a completion is there to reap; the back-off bounds the wait in case
  // nothing is in flight. With EXT_ARG (5.11+) this wait takes no SQE.
  if (io_uring_cq_ready(&ring_) == 0) {
    __kernel_timespec backoff{};
    backoff.tv_nsec = 1'000'000;
    io_uring_cqe* cqe = nullptr;
    io_uring_wait_cqe_timeout(&ring_, &cqe, &backoff);
  }
  return 0;
}

int Ring::wait_for(uint64_t user_data) {
  int ret = submit();
  if (ret < 0) return ret;
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    ret = io_uring_wait_cqe(&ring_, &cqe);
    if (ret == -EINTR) continue;
    if (ret < 0) return ret;
    const bool match = cqe->user_data == user_data;
    const int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    if (match) return res;
  }
}

}  // namespace ringlb::uring
