// /api/v1/status: everything the status page shows, as one JSON object with stable field names
// (docs/status-api.md lists each): the process, every listener, every cluster with its backends
// (server/status/backend_json.h), and each one's last 15 minutes (server/status/history.h).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "server/runtime/shared_state.h"
#include "server/status/history.h"

namespace ringlb::status {

using Json = nlohmann::ordered_json;

// `version`: ringlb's. `history` may be null (no series then).
Json status_json(SharedState& shared, const std::string& version, const History* history);

// The text of `j` for an HTTP body or a control answer (bytes that are not UTF-8, in a name
// written in the config, become U+FFFD rather than failing).
std::string dump(const Json& j);

}  // namespace ringlb::status
