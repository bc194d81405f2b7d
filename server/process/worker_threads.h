// The worker threads, each running its own ring (server/worker/worker.h). Started one at a time,
// each reporting its ring before the next starts; the destructor ends and joins them.
#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "server/base/error.h"
#include "server/runtime/shared_state.h"
#include "server/uring/buffer_region.h"
#include "server/worker/worker.h"

namespace ringlb::process {

class WorkerThreads {
 public:
  WorkerThreads() = default;
  // Joins every thread started. Workers the acceptor did not drain (start-up failed after they
  // started) are told to stop first.
  ~WorkerThreads();
  WorkerThreads(const WorkerThreads&) = delete;
  WorkerThreads& operator=(const WorkerThreads&) = delete;

  // Starts shared.workers.size() workers on `region`'s buffers; each worker's ring fd goes into
  // its shared.workers slot. A worker that cannot start is a failure (the others are stopped by
  // the destructor).
  Status start(SharedState& shared, uring::BufferRegion& region);
  // The acceptor has told every worker to drain: they end on their own.
  void drained() { drained_ = true; }

 private:
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  std::vector<int> ring_fds_;  // of the workers that started
  bool drained_ = false;
};

}  // namespace ringlb::process
