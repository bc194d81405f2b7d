#include "server/uring/ring.h"

#include <cerrno>

#include "server/uring/compat.h"

namespace ringlb::uring {

Ring::~Ring() {
  if (initialized_) io_uring_queue_exit(&ring_);
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
  initialized_ = true;
  return 0;
}

int Ring::enable() { return enable_rings(&ring_); }

io_uring_sqe* Ring::sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void Ring::reserve(unsigned n) {
  if (io_uring_sq_space_left(&ring_) < n) io_uring_submit(&ring_);
}

int Ring::submit_and_wait_one() {
  const int ret = io_uring_submit_and_wait(&ring_, 1);
  return ret >= 0 || ret == -EINTR || ret == -ETIME || ret == -EBUSY ? 0 : ret;
}

int Ring::wait_for(uint64_t user_data) {
  int ret = io_uring_submit(&ring_);
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
