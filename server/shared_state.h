// What the acceptor and the workers share. Written during start-up, then read-only, except for
// the per-worker atomics each of which has a single writer.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "metrics/stats.h"
#include "server/config.h"

namespace ringlb {

struct alignas(64) WorkerSlot {
  int ring_fd = -1;
  unsigned capacity = 0;              // client connections this worker can hold
  std::atomic<uint32_t> active{0};    // written by the worker, read by the acceptor
  std::atomic<bool> stopped{false};   // the worker's loop has ended
};

struct SharedState {
  explicit SharedState(const Config& c) : config(c) {}
  Config config;
  std::unique_ptr<metrics::Registry> registry;
  std::vector<std::unique_ptr<WorkerSlot>> workers;
  std::atomic<bool> draining{false};

  uint64_t active_connections() const {
    uint64_t n = 0;
    for (const auto& w : workers) n += w->active.load(std::memory_order_relaxed);
    return n;
  }
};

}  // namespace ringlb
