// The balancer snapshots one worker uses, per cluster, each with its picker, and the listeners'
// policies. A reload publishes new snapshots for the clusters that changed: new connections pick
// from them, and connections keep the one they picked from until they end, so a reload never
// pulls a backend out from under them.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <vector>

#include "server/proxy/snapshot_ref.h"
#include "server/runtime/shared_state.h"

namespace ringlb::worker {
struct Context;
}

namespace ringlb::proxy {

class SnapshotCache {
 public:
  explicit SnapshotCache(worker::Context& ctx);
  SnapshotCache(const SnapshotCache&) = delete;
  SnapshotCache& operator=(const SnapshotCache&) = delete;

  // The newest snapshot of `cluster`, taken by one more connection.
  SnapshotRef* acquire(uint16_t cluster);
  void release(SnapshotRef* ref);  // no-op for null
  // Notices a reload (if any) without taking a reference: gives connections to backends the new
  // snapshots dropped their drain deadline, and takes the listeners' new policies.
  void refresh();
  // Takes the listeners' new policies if a reload published some (one relaxed load otherwise).
  void refresh_policies();
  const ListenerPolicy& policy(uint16_t listener) const { return policies_->listeners[listener]; }
  const ListenerPolicies& policies() const { return *policies_; }

 private:
  struct Cluster {
    std::list<SnapshotRef> refs;  // back() is the newest; older ones live while used
    uint64_t version = 0;
  };
  SnapshotRef* current(uint16_t cluster);

  worker::Context& ctx_;
  std::vector<Cluster> clusters_;  // by registry cluster index
  std::shared_ptr<const ListenerPolicies> policies_;
  uint64_t policies_version_ = 0;
};

}  // namespace ringlb::proxy
