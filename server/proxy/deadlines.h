// When a connection is due to be closed, and why: pure, so the rules are unit-tested without a
// ring. The worker keeps one timer per connection at its earliest deadline; activity only moves
// last_active_ns, and a timer that fires early for that reason is simply re-armed (lazily), so
// the data path never touches the timer wheel.
#pragma once

#include <cstdint>

#include "metrics/stats.h"
#include "server/proxy/session.h"

namespace ringlb::proxy {

struct Timeouts {
  uint64_t idle_ns = 0;
  uint64_t fin_ns = 0;
  uint64_t max_duration_ns = 0;  // 0: none
  uint64_t queue_ns = 0;
  uint64_t proxy_header_ns = 0;  // a PROXY header must be whole within this of its first peek
  uint64_t tls_inspect_ns = 0;   // a ClientHello must be whole within this of its first peek
  uint64_t tls_handshake_ns = 0; // a terminating listener's handshake must be done within this
  uint64_t connect_ns = 0;       // the cluster's connect timeout: also its TLS handshake's
};

struct Deadline {
  uint64_t at_ns = UINT64_MAX;  // UINT64_MAX: nothing is due in this state
  metrics::CloseReason reason = metrics::CloseReason::k_error;
  // Not a close but a wake-up: an interim access-log record or a held recv (rate_limit.h) is
  // due. The same timer serves both, so sessions without them cost nothing more.
  bool wake = false;
};

// The earliest deadline of `s` in its current phase, wake-ups included.
Deadline next_deadline(const Session& s, const Timeouts& t);

// The earliest wake-up of `s` (UINT64_MAX: none): its next interim record, a held recv.
uint64_t next_wake(const Session& s);

// access-log-interval: the first interim record after `now_ns` of a session that started at
// `start_ns`, on the session's own grid (start + k * interval), skipping what a late timer missed.
uint64_t next_update_at(uint64_t start_ns, uint64_t interval_ns, uint64_t now_ns);

// The deadline that has passed at `now_ns`, if any (at_ns == UINT64_MAX when none). When several
// have, the reload drain wins, then the maximum duration, then the state's own timeout.
Deadline expired_deadline(const Session& s, const Timeouts& t, uint64_t now_ns);

}  // namespace ringlb::proxy
