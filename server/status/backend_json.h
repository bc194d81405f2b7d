// A backend as the status API (/api/v1/status) and `ringlb ctl PATH --json backends` show it: one
// object, built in one place, so the two agree field for field (docs/status-api.md lists them).
// Built from the `ctl backends` row (server/control/backends_table.h) and the backend's counters.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "metrics/stats.h"
#include "server/control/backends_table.h"
#include "server/runtime/shared_state.h"

namespace ringlb::status {

using Json = nlohmann::ordered_json;

// "up", "down", "draining", "disabled" or "slow-start" (one word per state, for scripts; the
// row's state_text says more: "drain (down)", "up (ramp 40%)").
const char* state_name(const control::BackendStatus& s);
// Serving as configured: up (or ramping up) and enabled. The page's "not healthy only" view
// shows the rest.
bool healthy(const control::BackendStatus& s);

// The backend's object: the row's fields, its address, its counters (summed over the workers)
// and its last health check.
Json backend_json(const control::BackendStatus& s, const SharedState& shared);

// {"backends": [...]}: every backend of every cluster, by cluster in file order.
Json backends_json(SharedState& shared);

}  // namespace ringlb::status
