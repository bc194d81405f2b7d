// A cluster's balancer snapshot as one worker uses it: with its picker, and how many connections
// hold it.
#pragma once

#include <linux/time_types.h>

#include <cstdint>
#include <memory>

#include "balancer/picker.h"
#include "balancer/snapshot.h"

namespace ringlb::proxy {

struct SnapshotRef {
  std::shared_ptr<const balancer::Snapshot> snapshot;
  std::unique_ptr<balancer::Picker> picker;
  uint32_t conns = 0;
  uint16_t cluster = 0;
  // The client's address is asked for first when this cluster needs it: Maglev hashes it, a
  // PROXY header to a backend carries it. (The listener's ACL and the access log may need it too.)
  bool needs_peer_name = false;
  // The cluster's connect timeout, where each attempt's linked timeout points (it must stay put
  // until the SQE is submitted: connections hold their ref until they end).
  __kernel_timespec connect_ts{};
  uint64_t queue_ns = 0;
};

}  // namespace ringlb::proxy
