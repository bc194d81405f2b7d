// The balancer snapshots one worker uses, per cluster, each with its picker, and the listeners'
// policies. A reload publishes new snapshots for the clusters that changed: new sessions pick
// from them, and sessions keep the one they picked from until they end, so a reload never
// pulls a backend out from under them.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <vector>

#include "server/proxy/snapshot_ref.h"
#include "server/runtime/shared_state.h"

namespace ringlb::proxy {

class SnapshotCache {
 public:
  SnapshotCache(SharedState& shared, unsigned worker);
  SnapshotCache(const SnapshotCache&) = delete;
  SnapshotCache& operator=(const SnapshotCache&) = delete;

  // The newest snapshot of `cluster`, taken by one more session.
  SnapshotRef* acquire(uint16_t cluster, uint64_t now_ns);
  void release(SnapshotRef* ref);  // no-op for null
  // Takes the listeners' new policies if a reload published some (one relaxed load otherwise):
  // true when it did.
  bool refresh_policies();
  // Makes each cluster's newest snapshot current, calling changed(cluster, snapshot) for each
  // one this has not shown yet (a reload or discovery published it): sessions to backends it no
  // longer has then get the drain deadline.
  void refresh_clusters(uint64_t now_ns, const std::function<void(uint16_t, const balancer::Snapshot&)>& changed);
  const ListenerPolicy& policy(uint16_t listener) const { return policies_->listeners[listener]; }
  const ListenerPolicies& policies() const { return *policies_; }

 private:
  struct Cluster {
    std::list<SnapshotRef> refs;  // back() is the newest; older ones live while used
    uint64_t version = 0;
    uint64_t seen = 0;  // the newest version refresh_clusters() reported
  };
  SnapshotRef* current(uint16_t cluster, uint64_t now_ns);

  SharedState& shared_;
  const unsigned worker_;
  std::vector<Cluster> clusters_;  // by registry cluster index
  std::shared_ptr<const ListenerPolicies> policies_;
  uint64_t policies_version_ = 0;
};

}  // namespace ringlb::proxy
