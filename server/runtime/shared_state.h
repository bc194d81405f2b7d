// What the acceptor, the workers and the health checker share. Written during start-up (and by
// reloads through the clusters' snapshot holders and the listeners' policies: publish.h),
// otherwise read-only, except for the atomics: the per-worker ones have a single writer each, the
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
#include "server/access_log/access_log.h"
#include "server/base/acl.h"
#include "server/base/address.h"
#include "server/config/config.h"
#include "server/limits/shared_source_table.h"
#include "server/protocol/sni_routes.h"
#include "server/tls/client_context.h"
#include "server/tls/server_context.h"
#include "server/runtime/diagnostics_requests.h"

namespace ringlb {
namespace discovery {
class ClusterPublisher;
}

// Accepted connections the acceptor holds at once, each until its hand-off completes: so also the
// most hand-offs that can be on their way to one worker.
inline constexpr unsigned kAcceptSlots = 4096;
// Listener indexes over the life of the process: a reload that adds a listener (or changes one,
// which is a removal and an addition) takes a new index, never one used before, so a removed
// listener's connections keep reading its entries while they drain. The per-listener tables are
// sized to this at start-up and never move.
inline constexpr unsigned kMaxListeners = limits::kMaxListeners;

struct alignas(64) WorkerSlot {
  int ring_fd = -1;
  // Diagnostics text, written by the worker before it messages the acceptor, read after.
  std::mutex diagnostics_mu;
  std::string diagnostics;
  unsigned capacity = 0;              // client connections this worker can hold
  std::atomic<uint32_t> active{0};    // written by the worker, read by the acceptor
  std::atomic<bool> stopped{false};   // the worker's loop has ended
};

// Where a listener's clients go. Written once, before the listener accepts (at start-up, or by
// the reload that adds it), never changed after: a reload that changes a listener gives it a new
// index. So workers read these without locks.
struct ListenerRoute {
  bool accept_proxy = false;
  int family = 0;        // of its address: the size of a client's SO_PEERNAME
  bool sni = false;      // by the ClientHello's server name, through `sni_routes`
  // It ends TLS (its policy's `tls` has the contexts): its clients' SNI is the handshake's.
  bool tls = false;
  uint16_t cluster = 0;  // otherwise, this cluster (a BackendRegistry cluster index)
  protocol::SniRoutes sni_routes;  // to cluster indexes
  std::string name;                // the listener's name (access log)
};

// A listener's settings that a reload may change, as the workers apply them.
struct ListenerPolicy {
  Acl acl;      // its allow/deny lists (the global ones unless it has its own)
  Acl trusted;  // trusted-proxies as an allow list; empty: every source may send a PROXY header
  unsigned max_connections = 0;  // 0: only the global limit
  // Its per-source table (SharedState::source_tables), or null: no per-source limits.
  sources::SharedSourceTable* sources = nullptr;
  unsigned source_ipv6_prefix = 64;  // IPv6 sources are keyed by this prefix
  // Clients still in their handshake (PROXY header, ClientHello): at most max_handshakes on the
  // listener (0: no bound) and, through `handshakes` (null: no bound), so many per source.
  unsigned max_handshakes = 0;
  sources::SharedSourceTable* handshakes = nullptr;
  Millis idle_timeout{0}, fin_timeout{0}, max_connection_duration{0};
  Millis proxy_header_timeout{0}, tls_inspect_timeout{0};
  // Its TLS termination: a context per worker (null: it does not terminate). A reload builds a
  // new set (certificates read again); a connection keeps the context it started with.
  std::shared_ptr<const tls::ServerContextSet> tls;
  Millis tls_handshake_timeout{0};
  // Bandwidth limits per connection, bytes per second (0: none); its cluster's may be lower.
  uint64_t download_rate = 0, upload_rate = 0;
  // A reload removed the listener: its connections get the drain deadline and are then closed.
  bool removed = false;
};

struct ListenerPolicies {
  uint64_t version = 0;
  std::vector<ListenerPolicy> listeners;  // by listener index, every index used so far
  // TLS origination by registry cluster index (null: plain TCP to its backends), a context per
  // worker; rebuilt by each reload (CA and client certificate read again), like `tls` above.
  std::vector<std::shared_ptr<const tls::ClientContextSet>> cluster_tls;
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
  // By listener index; an entry is set before its listener accepts (see ListenerRoute).
  std::array<ListenerRoute, kMaxListeners> routes;
  // Live client connections per listener, all workers together: one atomic each, so that a
  // listener's max-connections holds exactly however its clients spread over the workers.
  std::array<std::atomic<uint32_t>, kMaxListeners> listener_active{};
  // Per-source tables by listener index, made by the first publish_config that gives the
  // listener per-source limits (the acceptor's thread, before the policies naming it are
  // published) and kept for the life of the process: a connection releases its source into the
  // table that admitted it, whatever reloads did since.
  std::array<std::unique_ptr<sources::SharedSourceTable>, kMaxListeners> source_tables;
  // The same for clients still in their handshake, per source (max-handshakes-per-source), and
  // their count per listener (max-handshakes).
  std::array<std::unique_ptr<sources::SharedSourceTable>, kMaxListeners> handshake_tables;
  std::array<std::atomic<uint32_t>, kMaxListeners> listener_handshakes{};
  // The acceptor's thread only (start-up, reloads): the listener behind each index used so far,
  // and whether it still serves. An index is never given to another listener.
  std::vector<ListenConfig> listener_configs;
  std::vector<bool> listener_live;
  std::unique_ptr<metrics::Registry> registry;
  // Why each backend's last active check failed ("HTTP 503 from GET /healthz"), by registry id,
  // for `ringlb ctl PATH backends`; "" until one fails. Written by the health checker.
  std::mutex check_failures_mu;
  std::array<std::string, balancer::BackendRegistry::kCapacity> last_check_failure;
  // Slow start: set once start-up is done (the file's first publish and the first answers of
  // etcd and DNS that start-up waits for). Backends published from then on that are new (a
  // reload, a discovery update) or back from drain or maintenance ramp; those before start at once.
  std::atomic<bool> ramp_new_backends{false};
  std::vector<std::unique_ptr<WorkerSlot>> workers;
  int acceptor_ring_fd = -1;  // workers answer diagnostics requests here
  // The status API's requests for a round of diagnostics, served by the acceptor.
  DiagnosticsRequests diagnostics_requests;
  // The listening addresses as bound (port 0 resolved), by listener index: the destination a
  // PROXY protocol header names. Set before the listener accepts, like `routes`.
  std::array<Address, kMaxListeners> listen_bound{};
  AccessLog* access_log = nullptr;  // --access-log, or null; outlives the workers
  // Publishes the clusters (reloads, discovery, the runtime API); outlives every thread.
  discovery::ClusterPublisher* publisher = nullptr;
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

}  // namespace ringlb
