// What the acceptor, the workers and the health checker share. Written during start-up (and by
// reloads through the snapshot holder), otherwise read-only, except for the per-worker atomics,
// each of which has a single writer.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "balancer/snapshot.h"
#include "metrics/stats.h"
#include "server/access_log.h"
#include "server/acl.h"
#include "server/address.h"
#include "server/config/config.h"

namespace ringlb {

// Accepted connections the acceptor holds at once, each until its hand-off completes: so also the
// most hand-offs that can be on their way to one worker.
inline constexpr unsigned kAcceptSlots = 4096;

struct alignas(64) WorkerSlot {
  int ring_fd = -1;
  // Diagnostics text, written by the worker before it messages the acceptor, read after.
  std::mutex diagnostics_mu;
  std::string diagnostics;
  unsigned capacity = 0;              // client connections this worker can hold
  std::atomic<uint32_t> active{0};    // written by the worker, read by the acceptor
  std::atomic<bool> stopped{false};   // the worker's loop has ended
};

struct SharedState {
  explicit SharedState(const Config& c) : config(c) {}
  Config config;  // as started; backends and policy live in `snapshot` (reloads replace it)
  balancer::BackendRegistry backends;
  // Backend addresses by registry id. An id is its address as written, so an entry, once set
  // (before the snapshot naming it is published), never changes.
  std::array<Address, balancer::BackendRegistry::kCapacity> backend_addresses{};
  balancer::SnapshotHolder snapshot;
  std::unique_ptr<metrics::Registry> registry;
  std::vector<std::unique_ptr<WorkerSlot>> workers;
  int acceptor_ring_fd = -1;  // workers answer diagnostics requests here
  // The listening addresses as bound (port 0 resolved), by listener index: the destination a
  // PROXY protocol header names. Set before any worker starts.
  std::vector<Address> listen_bound;
  AccessLog* access_log = nullptr;  // --access-log, or null; outlives the workers
  // --allow/--deny, replaced by a reload just before the snapshot it goes with is published;
  // workers copy it when they see the new snapshot version.
  std::mutex acl_mu;
  std::shared_ptr<const Acl> acl = std::make_shared<const Acl>();

  uint64_t active_connections() const {
    uint64_t n = 0;
    for (const auto& w : workers) n += w->active.load(std::memory_order_relaxed);
    return n;
  }
};

// Builds the balancer snapshot for `config` (registering new backends and their addresses) and
// publishes it with `version`. Empty on success, otherwise why the config cannot be used.
std::string publish_snapshot(const Config& config, uint64_t version, SharedState* shared);

}  // namespace ringlb
