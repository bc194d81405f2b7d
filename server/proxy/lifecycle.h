// A connection's life in one worker: a slot taken at the hand-off, its deadlines on the timer
// wheel, and the end: cancel what is in flight, wait for every completion that names it, close
// both descriptors, free the slot (liburing's proxy.c: cancel, then close).
#pragma once

#include <cstdint>
#include <vector>

#include "metrics/stats.h"
#include "server/proxy/conn.h"
#include "server/proxy/deadlines.h"

namespace ringlb {
struct ListenerPolicies;
}

namespace ringlb::worker {
struct Context;
}

namespace ringlb::proxy {

// Why a connection ends when an op on one of its sockets fails with `res` (-errno): the peer
// reset it, or something else went wrong.
metrics::CloseReason close_reason_for(int res);

class Lifecycle {
 public:
  explicit Lifecycle(worker::Context& ctx);
  Lifecycle(const Lifecycle&) = delete;
  Lifecycle& operator=(const Lifecycle&) = delete;

  // Sizes the slots for `capacity` connections; takes the listeners' policies.
  void init(uint32_t capacity);
  // The listeners' timeouts, at start-up and after a reload changed them.
  void set_policies(const ListenerPolicies& policies);
  // Takes a free slot for a client that arrived in direct slot `client` from `listener`, and
  // its cluster's snapshot when the listener has one cluster. Returns its id, or -1 when every
  // slot is taken.
  int open(int client, uint16_t listener, uint32_t accept_us);
  // Counts the connection in its listener's live connections, unless `limit` (0: none) are
  // live already: then false, and it is not counted.
  bool count_listener(uint32_t id, unsigned limit);

  // Ends the connection for `reason` (counted and logged once), cancelling what is in flight.
  void close(uint32_t id, metrics::CloseReason reason);
  // A completion of a closing connection arrived: frees it once it was the last.
  void maybe_finish(uint32_t id);
  // Both sides sent FIN and every forwarded FIN is done: close for the reason of the first.
  void maybe_close_after_eof(uint32_t id);

  // Counts (or uncounts) the connection in its backend's active connections.
  void count_backend(Conn& conn, bool on);

  // After a change that may bring the connection's deadline closer (a new state, a half-close,
  // a reload's drain deadline): moves its timer there. Later deadlines are left for the timer to
  // find when it fires (lazily), so activity never touches the wheel.
  void rearm_timer(uint32_t id);
  // Its timer fired: closes it if a deadline has passed, else re-arms at the next one.
  void on_timer(uint32_t id);
  // After lost completions: a closing connection is freed this long from now even if it still
  // counts completions in flight.
  void close_grace(uint32_t id);
  // The drain deadline passed: every connection still open is closed.
  void close_all(metrics::CloseReason reason);

  // Its listener's timeouts, with its cluster's queue timeout.
  Timeouts timeouts_for(const Conn& conn) const;

 private:
  void free(uint32_t id);

  worker::Context& ctx_;
  std::vector<Timeouts> timeouts_;  // by listener
  std::vector<uint32_t> free_;
};

}  // namespace ringlb::proxy
