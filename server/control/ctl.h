// `ringlb ctl PATH COMMAND`: the command-line client of the control socket.
#pragma once

#include <string>

namespace ringlb {

// Sends COMMAND to the control socket at `path` and prints the answer. Returns the process exit
// code: 0, 1 when the command could not be sent, 2 when `path` cannot be reached.
int run_ctl(const std::string& path, const std::string& command);

}  // namespace ringlb
