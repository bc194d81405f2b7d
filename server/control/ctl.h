// `ringlb ctl PATH COMMAND [ARGS...]`: the command-line client of the control socket.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace ringlb {

// Sends the command made of `words` (quoted where a word needs it: command.h) to the control
// socket at `path` and prints the answer on stdout, or a refusal ("error: ...") on stderr.
// Returns the process exit code: 0; 1 when the command was refused or could not be sent (or the
// server was busy); 2 when `path` cannot be reached.
int run_ctl(const std::string& path, const std::vector<std::string>& words);

// `ringlb ctl PATH -`: sends each line of `in` as it is written (already quoted: what `ctl
// overrides` printed, say), one connection each, empty lines skipped. Returns the worst exit
// code of them; stops at the first 2 (`path` cannot be reached).
int run_ctl_lines(const std::string& path, FILE* in);

}  // namespace ringlb
