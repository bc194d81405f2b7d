// A worker: one thread, one io_uring, many proxied sessions.
//
// Client descriptors arrive from the acceptor by msg_ring; the sessions' driver
// (server/proxy/driver.h) takes each from there to its close. The worker itself is the loop: it
// reaps a batch of completions and hands each to the driver (a session's) or to its own parts
// (hand-offs, the tick, diagnostics, the slot audit), fires the timers that are due, and
// implements the sessions' I/O seam on its ring (ring_ops.h).
#pragma once

#include <future>

#include "server/proxy/driver.h"
#include "server/proxy/env.h"
#include "server/proxy/snapshot_cache.h"
#include "server/runtime/shared_state.h"
#include "server/uring/buf_ring.h"
#include "server/uring/buffer_region.h"
#include "server/uring/file_table.h"
#include "server/uring/ring.h"
#include "server/worker/access_batch.h"
#include "server/worker/buffer_pool.h"
#include "server/worker/diagnostics.h"
#include "server/worker/ring_ops.h"
#include "server/worker/slot_audit.h"
#include "server/worker/timer_wheel.h"

namespace ringlb {

class Worker {
 public:
  Worker(SharedState& shared, unsigned index, uring::BufferRegion& region);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Direct-descriptor slots a worker registers for `capacity` connections: client and backend
  // for each, and room for descriptors still closing.
  static unsigned table_slots(unsigned capacity) { return capacity * 2 + 64; }
  // Completion-queue entries that `capacity` connections can never overflow (see worker.cc).
  static unsigned cq_entries(unsigned capacity);

  // Thread body. Creates the ring here (SINGLE_ISSUER binds it to this thread), reports the ring
  // fd (or -errno) through `ready`, then serves until drained.
  void run(std::promise<int>* ready);

 private:
  int setup();
  int fail(const char* step, int ret);  // logs the failed start-up step; returns ret
  // --iowq-scheduling batch: creates the io-wq thread for SHUTDOWNs as SCHED_BATCH. 0 or -errno.
  int create_batch_iowq_thread();
  void loop();
  void handle(const io_uring_cqe* cqe);
  void on_handoff(int res, uint32_t listener, uint32_t stamp_us);
  void on_control(uint32_t what);
  void on_tick();
  void arm_tick();
  // The kernel dropped completions (-EBADR): counted, and what may wait for them is recovered.
  void on_completions_lost();

  proxy::Env env_;
  WorkerSlot& slot_;
  uring::Ring ring_;
  uring::FileTable table_;
  uring::BufRing buffers_;
  uring::BufferRegion& region_;
  uint64_t drain_deadline_ns_ = 0;
  worker::BufferPool pool_;
  worker::TimerWheel timers_;
  worker::AccessBatch access_;
  worker::RingOps ops_;
  proxy::SnapshotCache snapshots_;
  proxy::Driver driver_;
  worker::Diagnostics diagnostics_;
  worker::SlotAudit audit_;
  __kernel_timespec tick_ts_{};
};

}  // namespace ringlb
