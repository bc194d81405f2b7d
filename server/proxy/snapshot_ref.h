// A balancer snapshot as one worker uses it: with its picker, and how many connections hold it.
#pragma once

#include <cstdint>
#include <memory>

#include "balancer/picker.h"
#include "balancer/snapshot.h"
#include "server/acl.h"

namespace ringlb::proxy {

struct SnapshotRef {
  std::shared_ptr<const balancer::Snapshot> snapshot;
  std::unique_ptr<balancer::Picker> picker;
  uint32_t conns = 0;
  // The client's address is asked for first: Maglev hashes it, a PROXY header carries it, the
  // ACL checks it, the access log names it.
  bool needs_peer_name = false;
  std::shared_ptr<const Acl> acl;  // published with this snapshot
};

}  // namespace ringlb::proxy
