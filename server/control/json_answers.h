// The control socket's answers as JSON, for a command sent as "json COMMAND" (`ringlb ctl PATH
// --json COMMAND`): one object a command, with the status API's field names where they overlap
// (a backend is the same object: server/status/backend_json.h). A refusal is {"error": "..."}.
#pragma once

#include <string>

#include "server/control/command.h"
#include "server/discovery/cluster_publisher.h"
#include "server/runtime/shared_state.h"

namespace ringlb::control {

// {"error": message}
std::string error_json(const std::string& message);
// {"backends": [...]}
std::string backends_json_answer(SharedState& shared);
// {"overrides": [{"cluster", "name", "runtime_weight", "admin", "commands": [...]}]}: the
// backends with a runtime change, and the command lines that make it (what `ctl overrides`
// prints, which a takeover carries over).
std::string overrides_json_answer(const discovery::ClusterPublisher& publisher);
// {"ok": true, "command": "drain web 10.0.0.2:80", "result": `done`, "backend": {...}} after a
// backend command was applied (`backend` null if it is gone meanwhile).
std::string change_json_answer(SharedState& shared, const Command& c, const std::string& done);
// {"total", "offset": 0, "limit": total, "connections": [...]} from the workers' diagnostics.
std::string connections_json_answer(const std::string& diagnostics);

}  // namespace ringlb::control
