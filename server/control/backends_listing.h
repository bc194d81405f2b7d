// The answer to `ringlb ctl PATH backends`: one logfmt line per backend of every cluster, with
// its state, weight (and slow-start share while it ramps), live connections, check type and the
// reason its last active check failed. Read from the published snapshots; no worker is asked.
#pragma once

#include <string>

#include "server/shared_state.h"

namespace ringlb {

std::string backends_listing(SharedState& shared);

}  // namespace ringlb
