// Active TCP health checks on an io_uring ring of their own: for each backend of every cluster
// (an address in two clusters is two backends, checked with each cluster's settings), every interval,
// a direct socket connects with a linked timeout (and, for a send-proxy backend, sends a LOCAL
// PROXY header) and is closed. `rise` successes in a row bring
// a down backend up; `fall` failures in a row take it down. Workers see the result through the
// backend's shared state (one relaxed load per pick).
#pragma once

#include <array>
#include <future>
#include <memory>
#include <vector>

#include "balancer/snapshot.h"
#include "server/protocol/proxy_protocol.h"
#include "server/shared_state.h"
#include "server/uring/file_table.h"
#include "server/uring/ring.h"
#include "server/user_data.h"

namespace ringlb {

class HealthChecker {
 public:
  explicit HealthChecker(SharedState& shared);
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // On its own thread: sets up the checker's ring, then fulfils `ready` (checks run only if
  // setting up worked; the proxy serves either way) and checks until stop().
  void run(std::promise<void>* ready);
  // Any thread. Wakes the checker, which returns from run() within one tick.
  void stop() { stopping_.store(true); }

 private:
  // The ring and its descriptor table. 0 or -errno (already reported).
  int setup();

  struct Check {
    uint64_t next_due_ns = 0;
    uint64_t started_ns = 0;
    bool in_flight = false;
    int slot = -1;
    uint32_t successes = 0;
    uint32_t failures = 0;
    bool last_seen_up = true;
    const balancer::BackendSpec* spec = nullptr;  // from the snapshot being checked
    // Holds the backend's id while a check is in flight: a reload that removes the backend
    // cannot free (and so recycle) the id under a check that will still write its state.
    std::shared_ptr<const balancer::Snapshot> pinned;
    __kernel_timespec timeout{};
    // A send-proxy backend expects a PROXY header on every connection, checks included (as
    // HAProxy sends one by default): the LOCAL form, naming no client.
    char proxy_header[kMaxProxyHeader];
    uint8_t proxy_header_len = 0;
  };

  void tick();
  void start(uint32_t id, const std::shared_ptr<const balancer::Snapshot>& snapshot);
  void on_connect(uint32_t id, int res);
  void finish(uint32_t id, bool ok);
  uint64_t data(Tag tag, uint32_t id) const { return encode(tag, id, now_us_); }

  SharedState& shared_;
  uring::Ring ring_;
  uring::FileTable table_;
  // Every cluster's snapshot being checked, by registry cluster index (null: none yet).
  std::vector<std::shared_ptr<const balancer::Snapshot>> snapshots_;
  std::array<Check, balancer::BackendRegistry::kCapacity> checks_{};
  std::atomic<bool> stopping_{false};
  uint32_t in_flight_ = 0;
  bool completions_lost_ = false;  // the kernel dropped CQEs: in_flight_ can no longer reach 0
  uint64_t now_ns_ = 0;
  uint32_t now_us_ = 0;
  __kernel_timespec tick_ts_{};
};

}  // namespace ringlb
