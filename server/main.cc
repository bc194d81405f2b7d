// ringlb: accepts TCP connections on an acceptor ring, hands them to worker rings with msg_ring,
// and proxies them to backends. The entry point: `ringlb ctl ...`, `ringlb check ...`, or run
// (server/process/ starts, serves and stops the process).
#include <cstdio>
#include <string>
#include <vector>

#include "server/base/error.h"
#include "server/base/log.h"
#include "server/control/ctl.h"
#include "server/process/check.h"
#include "server/process/process.h"

namespace {

// The one place an error becomes the exit code: each of its lines logged ("ringlb: error:
// FILE:LINE: KEY: message"), and its code returned (2 bad input, 1 the machine refused).
int exit_code(const ringlb::Status& status) {
  for (const std::string& line : status.lines()) ringlb::log(ringlb::LogLevel::kError, "%s", line.c_str());
  return status.exit_code();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc >= 2 ? argv[1] : "";
  if (command == "ctl") {
    if (argc < 4) {
      return exit_code(ringlb::Status::error(
          "usage: ringlb ctl PATH COMMAND [ARGS] (connections, backends, overrides, "
          "set-weight CLUSTER BACKEND N|reset, drain|disable|enable CLUSTER BACKEND), "
          "or ringlb ctl PATH - (command lines from stdin)"));
    }
    // "-": command lines from stdin, as written (a saved `ctl PATH overrides`, replayed).
    if (argc == 4 && std::string(argv[3]) == "-") return ringlb::run_ctl_lines(argv[2], stdin);
    return ringlb::run_ctl(argv[2], std::vector<std::string>(argv + 3, argv + argc));
  }
  // `check`'s argv[0] is "check", in the place of the program name.
  if (command == "check") return exit_code(ringlb::process::check(argc - 1, argv + 1));
  return exit_code(ringlb::process::run(argc, argv));
}
