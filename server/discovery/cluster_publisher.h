// One place that turns every source of backends into the clusters the workers see. The file
// (start-up, reloads) gives each cluster's static backends; discovery (DNS names, an etcd
// prefix) gives lists that change at run time; the runtime API (`ringlb ctl ... set-weight`,
// `drain`, `disable`) overrides a backend's weight and admin state. Any change rebuilds the
// effective config from all three and publishes the clusters that differ, like a reload: a
// backend that stays keeps its id, so its connections, stats and health state.
//
// Thread-safe: the acceptor (reloads, control commands) and the discovery threads call it; one
// mutex serialises the builds, so snapshot versions only grow. Nothing here is on the data path.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "server/config/config.h"
#include "server/runtime/shared_state.h"

namespace ringlb::discovery {

// Where a backend of the effective config came from (listed by `ctl backends`).
enum class Source : uint8_t { kFile, kDns, kEtcd };
const char* source_name(Source s);

// An operator's runtime change to one backend (HAProxy's `set server`). Kept while the backend
// exists (across reloads and discovery updates), dropped when it leaves the cluster. A runtime
// weight is also dropped when the backend's configured weight changes (a reload or a discovery
// update gives it a new one): the newer intent wins, as with HAProxy's server-state file.
using Admin = balancer::Admin;
const char* admin_name(Admin a);

struct Override {
  std::optional<uint32_t> weight;  // replaces the configured weight
  Admin admin = Admin::kEnabled;
  // The configured weight when `weight` was set (set_override fills it in).
  uint32_t configured = 0;
  bool empty() const { return !weight && admin == Admin::kEnabled; }
};

// One backend of the effective config, as `ctl backends` lists it.
struct BackendView {
  std::string cluster;
  std::string name;         // BackendConfig::text: its identity and metric label
  std::string origin;       // the source key: "file", "dns:NAME", "etcd:PREFIX"
  Source source = Source::kFile;
  uint32_t configured_weight = 0;  // before any override
  uint32_t weight = 0;             // in effect (0 while drained or disabled)
  std::optional<uint32_t> runtime_weight;  // set by `set-weight`, until reset
  Admin admin = Admin::kEnabled;
};

class ClusterPublisher {
 public:
  explicit ClusterPublisher(SharedState* shared) : shared_(shared) {}
  ClusterPublisher(const ClusterPublisher&) = delete;
  ClusterPublisher& operator=(const ClusterPublisher&) = delete;

  // Start-up and reloads, on the acceptor's thread: the file's config, whole. Publishes every
  // cluster (with what discovery gave it and the overrides merged in) and the listeners'
  // policies. Discovered lists of clusters the config no longer has are dropped. Empty on
  // success, otherwise why (nothing published); *changed and `indexes` as publish_config.
  std::string publish_file(const Config& config, std::vector<std::string>* changed = nullptr,
                           const std::vector<uint16_t>* indexes = nullptr);

  // Any thread: the backends that `key` (e.g. "dns:db.internal:5432") now gives `cluster`,
  // replacing what it gave before; an empty list withdraws them. Republishes the cluster if it
  // changed. Empty on success, otherwise why (an unknown cluster, too many backends): then the
  // cluster keeps what it had, and the list is not kept.
  std::string set_discovered(const std::string& cluster, const std::string& key, Source source,
                             std::vector<BackendConfig> backends, bool* changed = nullptr);

  // Any thread (the control socket's): changes one backend's override, or clears it when
  // `o` is empty (`o.configured` is filled in here). Empty on success, otherwise a one-line
  // error naming the unknown cluster or backend.
  std::string set_override(const std::string& cluster, const std::string& backend, const Override& o);
  // The override of a backend (empty if none).
  Override override_of(const std::string& cluster, const std::string& backend) const;

  // Every backend of the effective config, by cluster in file order.
  std::vector<BackendView> backends() const;
  // The config as last published (file config with discovery and overrides merged).
  Config effective() const;
  uint64_t version() const;

 private:
  struct Discovered {
    Source source;
    std::vector<BackendConfig> backends;
  };
  using Key = std::pair<std::string, std::string>;  // (cluster, source key or backend name)

  // The file's clusters with the discovered backends, before any override.
  Config combine_locked() const;
  // Drops the overrides of backends `combined` lacks, and runtime weights whose backend's
  // configured weight changed; returns a line for each, to log once the publish succeeds.
  std::vector<std::string> reconcile_overrides_locked(const Config& combined);
  void apply_overrides_locked(Config* combined) const;
  std::string publish_locked(const Config& file, std::vector<std::string>* changed,
                             const std::vector<uint16_t>* indexes, bool policies);
  const ClusterConfig* file_cluster_locked(const std::string& name) const;

  SharedState* shared_;
  mutable std::mutex mu_;
  Config file_;
  bool have_file_ = false;
  uint64_t version_ = 0;
  std::map<Key, Discovered> discovered_;  // by (cluster, source key): ordered, so merges are stable
  std::map<Key, Override> overrides_;     // by (cluster, backend name)
  Config combined_;   // as last published, before the overrides
  Config effective_;  // as last published: combined_ with the overrides (same backends, order)
};

}  // namespace ringlb::discovery
