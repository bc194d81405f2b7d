// `ringlb ctl PATH backends`: what each backend of every cluster is doing, one row each. Rows
// are built from a struct and printed by a list of columns (one per field), so that a field
// added to BackendStatus is one more entry in kColumns (backends_table.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "balancer/snapshot.h"
#include "server/runtime/shared_state.h"

namespace ringlb::control {

struct BackendStatus {
  std::string cluster;
  std::string backend;  // its address as written: the name the commands take
  balancer::Admin admin = balancer::Admin::kEnabled;
  bool up = true;  // health: the active checks' (and failed connects') verdict
  uint32_t weight = 0;             // in effect: what the workers pick by
  uint32_t configured_weight = 0;  // from the file or discovery
  std::optional<uint32_t> runtime_weight;  // set-weight, until reset
  std::optional<int32_t> active;   // live connections (unknown if published meanwhile)
  std::string origin;              // "file", "dns:NAME", "etcd:PREFIX"
  // Health checks: the type ("tcp", "http", "send-expect", "tls", "https"; "none" when not
  // checked, as in maintenance) and why its last failed check failed ("" if none has).
  std::string check = "none";
  std::string last_failure;
  // Slow start: the share of its weight it gets now, in percent, while a ramp runs.
  std::optional<uint32_t> ramp_percent;
  // Its registry id (its counters, its address) while a published snapshot names it.
  std::optional<uint32_t> id;
};

// "up", "down" (by health), "drain", "drain (down)", "maint" (disabled: not checked); an up,
// enabled backend in slow start is "up (ramp 40%)": it gets 40% of its weight's share now.
std::string state_text(const BackendStatus& s);
// "1"; "3 (configured 1)" after set-weight 3; "0 (set 3, configured 1)" while drained.
std::string weight_text(const BackendStatus& s);

// Every backend of the running clusters, by cluster in file order.
std::vector<BackendStatus> backend_statuses(SharedState& shared);
// A header line and one aligned line per backend: CLUSTER BACKEND STATE WEIGHT ACTIVE ORIGIN
// CHECK LAST-FAILURE ("-" if none; the last column, as it has spaces).
std::string format_backends(const std::vector<BackendStatus>& rows);

}  // namespace ringlb::control
