// The runtime API's changes to backends (`ringlb ctl PATH set-weight|drain|disable|enable`),
// applied through discovery::ClusterPublisher: each republishes the backend's cluster, so every
// worker picks by it from its next client on. Also the runtime state written out as commands
// (`ctl overrides`), which is what a takeover carries to the new process.
#pragma once

#include <string>

#include "server/control/command.h"
#include "server/discovery/cluster_publisher.h"

namespace ringlb::control {

// Applies a command that changes a backend (Command::changes_backend). On success *done
// describes the backend's new state ("web 10.0.0.1:80: weight 3 (configured 1), enabled");
// otherwise the error is one line (an unknown cluster or backend), and nothing changed.
Status apply_backend_command(discovery::ClusterPublisher& publisher, const Command& c, std::string* done);

// Every runtime change in effect, as the commands that make it: "set-weight C B N", then
// "drain C B" or "disable C B", one a line.
std::string overrides_as_commands(const discovery::ClusterPublisher& publisher);

// Applies the lines of an overrides_as_commands text (from the process taken over), logging
// each; lines this process cannot apply (a backend its config lacks) are logged and skipped.
// Returns how many were applied.
size_t restore_overrides(discovery::ClusterPublisher& publisher, const std::string& text);

}  // namespace ringlb::control
