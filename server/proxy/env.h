// What every phase of a worker's sessions reads: the configuration, the state shared with the
// other threads, the worker's counters and its clock. Owned by the worker, which moves the clock
// once per loop iteration.
#pragma once

#include <cstdint>

#include "metrics/stats.h"
#include "server/config/config.h"
#include "server/runtime/shared_state.h"

namespace ringlb::proxy {

struct Env {
  Env(SharedState& s, unsigned worker_index)
      : config(s.config), shared(s), stats(*s.registry->workers[worker_index]), worker(worker_index) {}
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  const Config& config;
  SharedState& shared;
  metrics::WorkerStats& stats;
  const unsigned worker;
  uint64_t now_ns = 0;  // read once per loop iteration
  uint32_t now_us = 0;  // its low 32 bits of microseconds: what user_data carries
  bool draining = false;
  // The kernel dropped completions (-EBADR): closing sessions may wait for one that never
  // comes, so they get a deadline after which they are freed anyway.
  bool completions_lost = false;
};

}  // namespace ringlb::proxy
