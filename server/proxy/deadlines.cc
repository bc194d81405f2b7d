#include "server/proxy/deadlines.h"

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;

// Calls visit(at, reason) for each deadline of `s`, in precedence order.
template <typename Visit>
void for_each_deadline(const Session& s, const Timeouts& t, Visit&& visit) {
  if (s.deadline_ns != 0) visit(s.deadline_ns, CloseReason::k_drain);
  if (t.max_duration_ns != 0) visit(s.start_ns + t.max_duration_ns, CloseReason::k_max_duration);
  switch (s.phase) {
    case Phase::kConnect:
      // Each attempt has its own linked timeout; only a turn in the queue is timed here.
      if (s.queued) visit(s.queued_ns + t.queue_ns, CloseReason::k_queue_timeout);
      break;
    case Phase::kProxyHeader:
      // From the first peek: a header trickled in a byte at a time must still be whole in time.
      if (t.proxy_header_ns != 0) visit(s.phase_ns + t.proxy_header_ns, CloseReason::k_bad_proxy_header);
      break;
    case Phase::kTlsAccept:
      if (t.tls_handshake_ns != 0) visit(s.phase_ns + t.tls_handshake_ns, CloseReason::k_tls_handshake_timeout);
      break;
    case Phase::kTlsConnect:
      if (t.connect_ns != 0) visit(s.phase_ns + t.connect_ns, CloseReason::k_connect_failed);
      break;
    case Phase::kClientHello:
      if (t.tls_inspect_ns != 0) visit(s.phase_ns + t.tls_inspect_ns, CloseReason::k_bad_client_hello);
      break;
    case Phase::kPump: {
      // A timeout of 0 is off. Half-closed, the fin timeout applies where it is the shorter one.
      const bool fin = s.half_closed() && t.fin_ns != 0 && (t.idle_ns == 0 || t.fin_ns < t.idle_ns);
      if (fin) {
        visit(s.last_active_ns + t.fin_ns, CloseReason::k_fin_timeout);
      } else if (t.idle_ns != 0) {
        visit(s.last_active_ns + t.idle_ns, CloseReason::k_idle_timeout);
      }
      break;
    }
    default:
      break;  // admit, route: a completion or two, no wait of their own; closing, free: nothing
  }
}

}  // namespace

Deadline next_deadline(const Session& s, const Timeouts& t) {
  Deadline d;
  for_each_deadline(s, t, [&](uint64_t at, CloseReason reason) {
    if (at < d.at_ns) d = {at, reason, false};
  });
  if (const uint64_t wake = next_wake(s); wake < d.at_ns) d = {wake, CloseReason::k_error, true};
  return d;
}

uint64_t next_wake(const Session& s) {
  uint64_t at = UINT64_MAX;
  if (s.next_update_ns != 0) at = s.next_update_ns;
  // Only the pump holds recvs.
  for (const RateLimit& r : s.rate) {
    if (s.phase == Phase::kPump && r.held() && r.held_until_ns < at) at = r.held_until_ns;
  }
  return at;
}

uint64_t next_update_at(uint64_t start_ns, uint64_t interval_ns, uint64_t now_ns) {
  if (now_ns < start_ns) return start_ns + interval_ns;
  return start_ns + ((now_ns - start_ns) / interval_ns + 1) * interval_ns;
}

Deadline expired_deadline(const Session& s, const Timeouts& t, uint64_t now_ns) {
  Deadline d;
  for_each_deadline(s, t, [&](uint64_t at, CloseReason reason) {
    if (d.at_ns == UINT64_MAX && at <= now_ns) d = {at, reason};
  });
  return d;
}

}  // namespace ringlb::proxy
