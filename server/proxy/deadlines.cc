#include "server/proxy/deadlines.h"

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;

// Calls visit(at, reason) for each deadline of `conn`, in precedence order.
template <typename Visit>
void for_each_deadline(const Conn& conn, const Timeouts& t, Visit&& visit) {
  if (conn.deadline_ns != 0) visit(conn.deadline_ns, CloseReason::k_drain);
  if (t.max_duration_ns != 0) visit(conn.start_ns + t.max_duration_ns, CloseReason::k_max_duration);
  switch (conn.state) {
    case State::kQueued:
      visit(conn.queued_ns + t.queue_ns, CloseReason::k_queue_timeout);
      break;
    case State::kProxyHeader:
      // last_active_ns stays at the hand-off until the header is whole: a header trickled in a
      // byte at a time must still be whole within the header timeout from the start.
      visit(conn.last_active_ns + t.proxy_header_ns, CloseReason::k_bad_proxy_header);
      break;
    case State::kClientHello:
      // last_active_ns is when the peeking began (after any PROXY header), and stays there.
      visit(conn.last_active_ns + t.tls_inspect_ns, CloseReason::k_bad_client_hello);
      break;
    case State::kProxying: {
      const bool half_closed = conn.flow[kUp].eof || conn.flow[kDown].eof;
      if (half_closed && t.fin_ns < t.idle_ns) {
        visit(conn.last_active_ns + t.fin_ns, CloseReason::k_fin_timeout);
      } else {
        visit(conn.last_active_ns + t.idle_ns, CloseReason::k_idle_timeout);
      }
      break;
    }
    default:
      break;  // connecting: each attempt has its own linked timeout; closing, free: nothing
  }
}

}  // namespace

Deadline next_deadline(const Conn& conn, const Timeouts& t) {
  Deadline d;
  for_each_deadline(conn, t, [&](uint64_t at, CloseReason reason) {
    if (at < d.at_ns) d = {at, reason};
  });
  return d;
}

Deadline expired_deadline(const Conn& conn, const Timeouts& t, uint64_t now_ns) {
  Deadline d;
  for_each_deadline(conn, t, [&](uint64_t at, CloseReason reason) {
    if (d.at_ns == UINT64_MAX && at <= now_ns) d = {at, reason};
  });
  return d;
}

}  // namespace ringlb::proxy
