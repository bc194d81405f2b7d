// A listener's rules for one client address: its ACL, then its per-source limits. Shared by the
// admit phase (the socket's peer, before anything is read) and the PROXY header phase (the client
// a trusted proxy names).
#pragma once

#include <sys/socket.h>

#include <cstdint>

#include "metrics/stats.h"
#include "server/limits/shared_source_table.h"
#include "server/runtime/shared_state.h"

namespace ringlb::proxy {

struct Admitted {
  bool ok = false;
  metrics::CloseReason reason = metrics::CloseReason::k_error;  // when not ok
};

// Whether `policy` lets the client at `addr` in; when its per-source limits count it, *table and
// *key name the entry to release when it closes (else *table stays null).
Admitted admit_address(const ListenerPolicy& policy, const sockaddr* addr, uint64_t now_ns,
                       sources::SharedSourceTable** table, sources::SourceKey* key);

// The close reason for a source table's refusal.
metrics::CloseReason refusal_reason(sources::Admission a);

}  // namespace ringlb::proxy
