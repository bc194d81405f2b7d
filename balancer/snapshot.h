// The backend set and balancing policy as one immutable snapshot. Workers read the current one
// without locks; a reload builds a new one and publishes it (SnapshotHolder). Live per-backend
// state (active connections, up/down) lives in BackendState objects shared by every snapshot
// that names the same backend, so counts survive a reload.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "server/health/check_spec.h"

namespace ringlb::balancer {

enum class Policy : uint8_t { kRoundRobin, kLeastConn, kRandom2, kMaglev };
enum class HashKey : uint8_t { kAddr, kAddrPort };

// Parses "roundrobin", "leastconn", "random2", "maglev".
bool parse_policy(const std::string& text, Policy* out);
const char* policy_name(Policy p);

// An operator's runtime state of a backend (`ringlb ctl ... drain`, `disable`, `enable`).
enum class Admin : uint8_t {
  kEnabled,   // as configured
  kDrain,     // weight 0: no new clients, open connections finish, still health checked
  kDisabled,  // maintenance: no new clients and not health checked
};

// Shared, mutable, per backend: written by workers and the health checker with relaxed atomics.
struct alignas(64) BackendState {
  std::atomic<int32_t> active{0};           // live connections, all workers together
  std::atomic<uint8_t> up{1};               // 1 while it takes new connections
  std::atomic<uint32_t> connect_failures_in_a_row{0};
  // Slow start: when (CLOCK_MONOTONIC ns) the backend came up or was added; 0 = not ramping.
  // Written by the health checker and reloads, read by the pickers of backends with slow start.
  std::atomic<uint64_t> ramp_from_ns{0};
  // What the last publish gave it (written before that snapshot is published), for the
  // exporter, which holds no snapshot: its weight in effect and its admin state.
  std::atomic<uint32_t> weight{0};
  std::atomic<uint8_t> admin{0};
};

struct BackendSpec {
  std::string name;  // stable identity and metric label (the address as written)
  uint32_t weight = 1;
  uint32_t max_connections = 0;  // 0 = unlimited
  bool backup = false;
  // The PROXY protocol version sent to it before the client's bytes (send-proxy: 1,
  // send-proxy-v2: 2), or 0 for none. Read by the workers; no policy looks at it.
  uint8_t proxy_protocol = 0;
  // Active health checking (read by the health checker only); interval 0 = not checked.
  uint32_t check_interval_ms = 0;
  uint32_t check_timeout_ms = 0;
  uint32_t rise = 2;
  uint32_t fall = 3;
  // What a check sends and expects (null: a tcp check). Read by the health checker only.
  std::shared_ptr<const health::CheckSpec> check;
  // Slow start: its share ramps up over this long after it comes up or is added; 0 = at once.
  uint32_t slow_start_ms = 0;
  // For the metrics (copied into BackendState): the weight and check interval say what it does.
  Admin admin = Admin::kEnabled;
  uint32_t id = 0;               // index in the BackendRegistry: stats and state live there
  BackendState* state = nullptr;
};

// Every cluster ringlb has been configured with (cluster indexes are never reused), and the
// backends the live snapshots name. A backend id stands for one address in one cluster: an
// address in two clusters is two backends, each with its cluster's health settings,
// max-connections and counts (its metrics carry both labels).
//
// Backend ids are recycled. Each finished snapshot holds one reference on every id it names
// (intern), and gives it back when the snapshot object is destroyed (release), that is when the
// last shared_ptr to it is gone: the holder's, the workers' snapshot caches' (which connections
// pin through their SnapshotRef) and the health checker's (which pins a check's snapshot until
// the check completes). A backend kept across a reload is named by the old and the new snapshot
// at once, so its count never reaches zero: it keeps its id, its stats and its state. When the
// count reaches zero nothing can read or write the id any more (every reader reached it through
// a snapshot), so it is cleared (the on_free hook resets its stats and address) and only then
// goes back to the free list, all under the registry's lock.
class BackendRegistry {
 public:
  static constexpr uint32_t kCapacity = 1024;
  static constexpr uint32_t kMaxClusters = 256;
  // The index of cluster `name`, registering it if new; -1 when kMaxClusters are registered.
  int32_t intern_cluster(const std::string& name);
  uint32_t clusters() const { return clusters_.load(std::memory_order_acquire); }
  const std::string& cluster_name(uint32_t cluster) const { return cluster_names_[cluster]; }
  // The id for backend `name` of cluster `cluster`, taking one reference on it (allocating a free
  // id if the backend is not live); -1 when every id is live.
  // *added (if given) says whether the id was free before (a backend new to the cluster).
  int32_t intern(uint32_t cluster, const std::string& name, bool* added = nullptr);
  // Gives back one reference taken by intern; the last one frees the id (see above).
  void release(uint32_t id);
  // Called with the lock held for an id about to be freed, before anyone can get it again.
  void set_on_free(std::function<void(uint32_t)> on_free);
  // Ids ever handed out (live or free): ids are below it.
  uint32_t size() const { return size_.load(std::memory_order_acquire); }
  bool live(uint32_t id) const { return refs_[id].load(std::memory_order_acquire) != 0; }
  uint32_t live_count() const;
  // Valid while the caller holds a snapshot naming the id.
  const std::string& name(uint32_t id) const { return names_[id]; }
  uint32_t cluster_of(uint32_t id) const { return cluster_of_[id]; }
  BackendState& state(uint32_t id) { return states_[id]; }
  const BackendState& state(uint32_t id) const { return states_[id]; }
  // The live backends, copied under the lock: for readers that hold no snapshot (the exporter).
  struct Live {
    uint32_t id;
    uint32_t cluster;
    std::string name;
  };
  std::vector<Live> live_backends() const;

 private:
  mutable std::mutex mu_;
  std::function<void(uint32_t)> on_free_;
  std::vector<uint32_t> free_;
  std::atomic<uint32_t> size_{0};
  std::atomic<uint32_t> clusters_{0};
  std::array<std::string, kCapacity> names_;
  std::array<uint32_t, kCapacity> cluster_of_{};
  std::array<std::atomic<uint32_t>, kCapacity> refs_{};  // snapshots naming the id; 0: free
  std::array<std::string, kMaxClusters> cluster_names_;
  std::array<BackendState, kCapacity> states_;
};

// One cluster's backends and how to reach them. Each cluster has a snapshot of its own.
struct Snapshot {
  uint64_t version = 0;
  uint32_t cluster = 0;  // its index in the BackendRegistry
  // The cluster was removed by a reload: no backends, no listener sends clients to it; it is
  // published only so that connections to its backends get their drain deadline.
  bool retired = false;
  // Its backends come from discovery (DNS, etcd): it may have none for a while.
  bool may_be_empty = false;
  // How its clients connect: each attempt's timeout, attempts per client (first try plus
  // retries on other backends), and how long a client waits while every backend is full.
  uint32_t connect_timeout_ms = 2000;
  uint32_t connect_attempts = 3;
  uint32_t queue_timeout_ms = 2000;
  // A send-proxy v2 header from a terminating listener carries the client's certificate (DER).
  bool proxy_client_certificate = false;
  // Its bandwidth limits per connection, bytes per second (0: none); a listener's may be lower.
  uint64_t download_rate = 0;  // backend to client
  uint64_t upload_rate = 0;    // client to backend
  Policy policy = Policy::kRoundRobin;
  HashKey hash_key = HashKey::kAddr;
  std::vector<BackendSpec> backends;
  std::vector<int32_t> maglev;  // filled for Policy::kMaglev
};

// Validates and completes a snapshot: registers its backends (in its cluster: one reference on
// each id, which sets the spec's `state`), builds the Maglev table. Whoever destroys the snapshot
// gives the references back (release_backends; SharedState's snapshots do it in their deleter).
// A backend with slow start that is new to the registry ramps from `added_at_ns` (0: no ramp, as
// at start-up, when every backend starts at once). Returns an empty string on success,
// otherwise what is wrong.
std::string finish_snapshot(Snapshot* snapshot, BackendRegistry* registry, uint32_t maglev_size,
                            uint64_t added_at_ns = 0);

// Releases the ids a finish_snapshot took (the specs with a `state`), once.
void release_backends(Snapshot* snapshot, BackendRegistry* registry);

// Whether two finished snapshots serve clients alike (all but the version): a reload publishes
// a cluster only when it changed, so workers keep their pickers (round-robin positions) otherwise.
bool same_snapshot(const Snapshot& a, const Snapshot& b);

// Publishes snapshots to the workers. Readers check `version()` (one relaxed load) and only when
// it moved take the lock to copy the new pointer, so the data path never contends.
class SnapshotHolder {
 public:
  void publish(std::shared_ptr<const Snapshot> snapshot);
  uint64_t version() const { return version_.load(std::memory_order_acquire); }
  std::shared_ptr<const Snapshot> get() const;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Snapshot> current_;
  std::atomic<uint64_t> version_{0};
};

}  // namespace ringlb::balancer
