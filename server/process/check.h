// `ringlb check ARGS`: ARGS parsed and validated as `ringlb ARGS` would, and nothing started.
#pragma once

#include "server/base/error.h"

namespace ringlb::process {

// argv[0] stands where the program's name would ("check"). On success prints what was checked
// ("FILE: ok (2 listeners, ...)", or --help's text) on standard output; an error says what is
// wrong, one problem a line (FILE:LINE: KEY: message).
Status check(int argc, const char* const* argv);

}  // namespace ringlb::process
