#include "server/process/worker_threads.h"

#include <cstring>
#include <future>
#include <string>

#include "server/uring/compat.h"
#include "server/uring/ring.h"
#include "server/uring/user_data.h"

namespace ringlb::process {
namespace {

// Tells workers that did start to stop, from a throwaway ring (start-up failure path only).
void stop_workers(const std::vector<int>& ring_fds) {
  uring::Ring ring;
  uring::RingOptions options;
  options.single_issuer = false;
  options.defer_taskrun = false;
  if (ring.init(options) < 0) return;
  for (int fd : ring_fds) {
    uring::run_one(ring, [&](io_uring_sqe* sqe) {
      uring::prep_msg_ring_data(sqe, fd, 0, encode(Tag::kControl, 0, 0));
    });
  }
}

}  // namespace

WorkerThreads::~WorkerThreads() {
  if (!drained_) stop_workers(ring_fds_);
  for (std::thread& t : threads_) t.join();
}

Status WorkerThreads::start(SharedState& shared, uring::BufferRegion& region) {
  for (unsigned i = 0; i < shared.workers.size(); ++i) {
    workers_.push_back(std::make_unique<Worker>(shared, i, region));
    std::promise<int> ready;
    std::future<int> ring_fd = ready.get_future();
    threads_.emplace_back([w = workers_.back().get(), p = std::move(ready)]() mutable { w->run(&p); });
    const int fd = ring_fd.get();
    if (fd < 0) return Status::failure("worker " + std::to_string(i) + " could not start: " + strerror(-fd));
    shared.workers[i]->ring_fd = fd;
    ring_fds_.push_back(fd);
  }
  return {};
}

}  // namespace ringlb::process
