// ringlb's command line (Boost.Program_options). With --config FILE the TOML file
// (toml_config.h) comes first and every flag given replaces the file's top-level key of the same
// name; --listen and --backend only go with a file that has no clusters or listeners of its own.
#pragma once

#include <string>

#include "server/base/error.h"
#include "server/config/config.h"

namespace ringlb {

// Parses, reads --config FILE and validates; binds and starts nothing (`ringlb check` is this
// alone). An error holds every problem found, one a line. --help and --version are no error:
// *print (if given) gets their text for standard output, which is all the process then does, and
// *config is left as it was.
Status parse_config(int argc, const char* const* argv, Config* config, std::string* print = nullptr);

}  // namespace ringlb
