// ringlb's command line (Boost.Program_options). With --config FILE the TOML file
// (toml_config.h) comes first and every flag given replaces the file's top-level key of the same
// name; --listen and --backend only go with a file that has no clusters or listeners of its own.
#pragma once

#include <string>

#include "server/config/config.h"

namespace ringlb {

enum class ParseStatus {
  kRun,    // *config is ready
  kExit0,  // --help or --version: *message holds what to print on stdout
  kError,  // *message holds every error found, one per line; exit 2
};

// Parses, reads --config FILE and validates; binds and starts nothing (`ringlb check` is this
// alone).
ParseStatus parse_config(int argc, const char* const* argv, Config* config, std::string* message);

}  // namespace ringlb
