// A worker: one thread, one io_uring, many proxied connections.
//
// Client descriptors arrive from the acceptor by msg_ring; the worker connects a direct socket to
// a backend and moves bytes both ways. The worker itself is only the loop: it reaps a batch of
// completions and hands each to the piece it belongs to (intake, upstream, pump, lifecycle,
// diagnostics, slot audit), then fires the timers that are due.
#pragma once

#include <future>

#include "server/proxy/intake.h"
#include "server/proxy/lifecycle.h"
#include "server/proxy/pump.h"
#include "server/proxy/sni_inspector.h"
#include "server/proxy/snapshot_cache.h"
#include "server/proxy/upstream.h"
#include "server/runtime/shared_state.h"
#include "server/uring/buffer_region.h"
#include "server/worker/access_batch.h"
#include "server/worker/buffer_pool.h"
#include "server/worker/context.h"
#include "server/worker/diagnostics.h"
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
  // A completion that names a connection (its index carries the connection's generation).
  void handle_conn(Tag tag, uint32_t index, const io_uring_cqe* cqe);
  void on_control(uint32_t what);
  void on_tick();
  void arm_tick();
  // The kernel dropped completions (-EBADR): counted, and what may wait for them is recovered.
  void on_completions_lost();

  worker::Context ctx_;
  uring::BufferRegion& region_;
  worker::BufferPool pool_;
  worker::TimerWheel timers_;
  worker::AccessBatch access_;
  worker::Diagnostics diagnostics_;
  worker::SlotAudit audit_;
  proxy::SnapshotCache snapshots_;
  proxy::Lifecycle lifecycle_;
  proxy::Intake intake_;
  proxy::SniInspector sni_;
  proxy::Upstream upstream_;
  proxy::Pump pump_;
  __kernel_timespec tick_ts_{};
};

}  // namespace ringlb
