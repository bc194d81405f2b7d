// Active health checks on an io_uring ring of their own, on the checker's own thread: for each
// backend of every cluster (an address in two clusters is two backends, checked with each
// cluster's settings), every interval, a direct socket connects (to the backend's port or
// check-port), then a health::Probe holds the conversation: a send-proxy backend's LOCAL PROXY
// header, a TLS handshake (OpenSSL over memory BIOs: the ring moves the records), an HTTP request
// or send-expect bytes, and the reply judged as it arrives (a udp check: a connected UDP socket,
// one datagram out, and the datagram back or an ICMP port unreachable is the verdict). Every
// operation is linked to a timeout at the check's deadline. `rise` passes in a row bring a down
// backend up (slow start begins), `fall` failures take it down; the last failure's reason is
// kept for `ringlb ctl backends` and the log line. Workers see the result through the backend's
// shared state.
#pragma once

#include <array>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "balancer/snapshot.h"
#include "server/base/address.h"
#include "server/health/probe.h"
#include "server/health/tls_client.h"
#include "server/runtime/shared_state.h"
#include "server/uring/file_table.h"
#include "server/uring/ring.h"
#include "server/uring/user_data.h"

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
    uint64_t deadline_ns = 0;
    bool in_flight = false;
    int slot = -1;
    uint32_t successes = 0;
    uint32_t failures = 0;
    bool last_seen_up = true;
    // The backend's spec in the newest snapshots (null: removed), and the one the check in
    // flight runs by (in its pinned snapshot; a reload meanwhile does not change a check midway).
    const balancer::BackendSpec* spec = nullptr;
    const balancer::BackendSpec* running = nullptr;
    // Holds the backend's id while a check is in flight: a reload that removes the backend
    // cannot free (and so recycle) the id under a check that will still write its state.
    std::shared_ptr<const balancer::Snapshot> pinned;
    Address target;  // the backend's address, with check-port if set
    __kernel_timespec timeout{};  // what is left to the deadline, for the next linked timeout
    // Made at the backend's first check, kept for the next ones (its buffers are 8 KiB).
    std::unique_ptr<health::Probe> probe;
  };

  void tick();
  void start(uint32_t id, const std::shared_ptr<const balancer::Snapshot>& snapshot);
  void on_connect(uint32_t id, int res);
  // Does what the probe asks next: a send or recv linked to the deadline, or the verdict.
  void advance(uint32_t id);
  // Links a timeout at the check's deadline behind `sqe` (reserved together with it), or within
  // `cap_ns` from now if that comes first (0: no cap).
  void link_deadline(uint32_t id, io_uring_sqe* sqe, uint64_t cap_ns = 0);
  void finish(uint32_t id, health::Result result, const std::string& reason);
  uint64_t data(Tag tag, uint32_t id) const { return encode(tag, id, now_us_); }

  SharedState& shared_;
  uring::Ring ring_;
  uring::FileTable table_;
  std::unique_ptr<health::TlsContext> tls_;
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
