// What `ringlb ctl PATH connections` lists, as JSON: the workers' diagnostics lines (one per
// socket: server/worker/diagnostics.cc, server/control/diagnostics.cc) joined into one object per
// connection, its client side and its backend side. /api/v1/connections and `ctl --json
// connections` both print this.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>

namespace ringlb::status {

using Json = nlohmann::ordered_json;

// One object per connection, in the order the text lists them:
//   {"worker": 0, "id": 5,
//    "client":  {"local": "...", "peer": "...", "rtt_us": N, "rttvar_us": N, "retransmits": N,
//                "bytes_acked": N, "bytes_received": N},
//    "backend": {"name": "...", "local": ..., ...}}   (null until its line is there)
// Lines that do not parse are skipped.
Json parse_connections(const std::string& diagnostics);

// {"total": N, "offset": O, "limit": L, "connections": [at most L of them, from O]}.
Json connections_page(const Json& connections, size_t offset, size_t limit);

}  // namespace ringlb::status
