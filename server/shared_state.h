// What the acceptor, the workers and the health checker share. Written during start-up (and by
// reloads through the clusters' snapshot holders and the listeners' policies), otherwise
// read-only, except for the atomics: the per-worker ones have a single writer each, the
// per-listener connection counts are shared by the workers.
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
#include "server/protocol/sni_routes.h"

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

// Where a listener's clients go. Fixed for the life of the process: a reload that would change
// a listener is refused (reload_refusals), so workers read these without locks.
struct ListenerRoute {
  bool sni = false;      // by the ClientHello's server name, through `sni_routes`
  uint16_t cluster = 0;  // otherwise, this cluster (a BackendRegistry cluster index)
  protocol::SniRoutes sni_routes;  // to cluster indexes
};

// A listener's settings that a reload may change, as the workers apply them.
struct ListenerPolicy {
  Acl acl;      // its allow/deny lists (the global ones unless it has its own)
  Acl trusted;  // trusted-proxies as an allow list; empty: every source may send a PROXY header
  unsigned max_connections = 0;  // 0: only the global limit
  Millis idle_timeout{0}, fin_timeout{0}, max_connection_duration{0};
  Millis proxy_header_timeout{0}, tls_inspect_timeout{0};
};

struct ListenerPolicies {
  uint64_t version = 0;
  std::vector<ListenerPolicy> listeners;  // by listener index
};

struct SharedState {
  explicit SharedState(const Config& c);
  ~SharedState();
  SharedState(const SharedState&) = delete;
  SharedState& operator=(const SharedState&) = delete;
  Config config;  // as started; clusters live in `clusters` and listeners' settings in `policies`
  balancer::BackendRegistry backends;
  // Backend addresses by registry id. An id is its address as written (in its cluster), so an
  // entry, set before the snapshot naming it is published, does not change while the id is live;
  // it is cleared when the id is freed (balancer/snapshot.h).
  std::array<Address, balancer::BackendRegistry::kCapacity> backend_addresses{};
  // One snapshot per cluster, by registry cluster index; version 0: never published.
  std::array<balancer::SnapshotHolder, balancer::BackendRegistry::kMaxClusters> clusters;
  std::vector<ListenerRoute> routes;  // by listener; set before any worker starts
  // Live client connections per listener, all workers together: one atomic each, so that a
  // listener's max-connections holds exactly however its clients spread over the workers.
  std::vector<std::atomic<uint32_t>> listener_active;
  std::unique_ptr<metrics::Registry> registry;
  std::vector<std::unique_ptr<WorkerSlot>> workers;
  int acceptor_ring_fd = -1;  // workers answer diagnostics requests here
  // The listening addresses as bound (port 0 resolved), by listener index: the destination a
  // PROXY protocol header names. Set before any worker starts.
  std::vector<Address> listen_bound;
  AccessLog* access_log = nullptr;  // --access-log, or null; outlives the workers
  // Listeners' reloadable settings. Workers compare policies_version (one relaxed load per
  // hand-off) and take the lock to copy the pointer only when it moved.
  std::mutex policies_mu;
  std::shared_ptr<const ListenerPolicies> policies = std::make_shared<const ListenerPolicies>();
  std::atomic<uint64_t> policies_version{0};

  uint64_t active_connections() const {
    uint64_t n = 0;
    for (const auto& w : workers) n += w->active.load(std::memory_order_relaxed);
    return n;
  }
};

// Start-up: registers the clusters and sets each listener's route. Empty on success, otherwise
// why the config cannot be used.
std::string set_up_routes(const Config& config, SharedState* shared);

// What a config read at a reload changes that a reload cannot (a listener added, removed, or
// given another address, cluster or SNI routes), one line each; empty when it may be applied.
std::vector<std::string> reload_refusals(const Config& running, const Config& fresh);

// Builds every cluster's snapshot for `config` (registering new clusters, backends and their
// addresses), publishes with `version` those that changed and retires clusters it no longer
// has, then publishes the listeners' policies. All or nothing: empty on success, otherwise why
// the config cannot be used (nothing published). *changed (if given) gets the names of the
// clusters published.
std::string publish_config(const Config& config, uint64_t version, SharedState* shared,
                           std::vector<std::string>* changed = nullptr);

}  // namespace ringlb
