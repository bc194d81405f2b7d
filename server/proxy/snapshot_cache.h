// The balancer snapshots one worker uses, each with its picker. A reload publishes a new
// snapshot: new connections pick from it, and connections keep the one they picked from until
// they end, so a reload never pulls a backend out from under them.
#pragma once

#include <cstdint>
#include <list>
#include <memory>

#include "server/proxy/snapshot_ref.h"

namespace ringlb::worker {
struct Context;
}

namespace ringlb::proxy {

class SnapshotCache {
 public:
  explicit SnapshotCache(worker::Context& ctx) : ctx_(ctx) {}
  SnapshotCache(const SnapshotCache&) = delete;
  SnapshotCache& operator=(const SnapshotCache&) = delete;

  // The newest snapshot, taken by one more connection.
  SnapshotRef* acquire();
  void release(SnapshotRef* ref);
  // Notices a reload (if any) without taking a reference: gives connections to backends the new
  // snapshot dropped their drain deadline.
  void refresh();

 private:
  SnapshotRef* current();

  worker::Context& ctx_;
  std::list<SnapshotRef> refs_;  // back() is the newest; older ones live while used
  uint64_t version_ = 0;
};

}  // namespace ringlb::proxy
