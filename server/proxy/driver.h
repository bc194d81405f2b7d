// The driver of a worker's sessions: it owns every connection from its hand-off to its close.
// It runs each session's phases in order (admit, inspect, route, connect, pump), hands every
// completion to the phase its tag names (tags.h), and applies the Step that phase returns. It
// alone counts what is in flight (through Io), arms and cancels each session's timer, decides
// when a slot is free, and sets the close reason, the access-log record and the close metrics,
// each in one place. Phases never call one another.
#pragma once

#include <cstdint>
#include <vector>

#include "server/proxy/admit.h"
#include "server/proxy/connect.h"
#include "server/proxy/deadlines.h"
#include "server/proxy/env.h"
#include "server/proxy/inspect_proxy.h"
#include "server/proxy/inspect_tls.h"
#include "server/proxy/io.h"
#include "server/proxy/ops.h"
#include "server/proxy/pump.h"
#include "server/proxy/route.h"
#include "server/proxy/session.h"
#include "server/proxy/snapshot_cache.h"
#include "server/proxy/tls_accept.h"
#include "server/proxy/tls_connect.h"

namespace ringlb::proxy {

class Driver final : private QueueVisitor {
 public:
  // `capacity` sessions at most (the worker's share of max-connections).
  Driver(Env& env, Ops& ops, SnapshotCache& snapshots, uint32_t capacity);
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  // A client arrived in direct slot `client` from `listener`, taken by the acceptor at
  // `accept_us`. Its session starts: returns its id; or, with every session taken, it is closed
  // at once: -1.
  int open(int client, uint16_t listener, uint32_t accept_us);
  // A completion whose tag is a session's (tags.h: is_session_tag).
  void on_completion(Tag tag, uint32_t index, int res, uint32_t flags);
  // Session `id`'s timer fired.
  void on_timer(uint32_t id);
  // After each batch of completions: sockets retried once the batch's closes have run, and
  // queued sessions let go as backends have room.
  void after_batch();
  // The queue's poll timer fired: room may have been made by other workers.
  void on_queue_poll();
  // Periodic: a reload's new snapshots and policies (sessions to what it removed get the drain
  // deadline), and flows still waiting for buffers the ring holds again.
  void on_tick();
  // Every open session is closed for `reason` (the drain deadline passed).
  void close_all(metrics::CloseReason reason);
  // The kernel dropped completions: closing sessions are freed after a grace period even if
  // they still count completions in flight.
  void on_completions_lost();
  // Submits what was held for the end of this batch (shutdowns: io.h).
  void submit_deferred() { io_.submit_deferred(); }

  uint32_t live() const { return live_; }
  const std::vector<Session>& sessions() const { return sessions_; }
  const Extras& extras() const { return extras_; }

 private:
  Step start(Session& s);
  Step dispatch(Session& s, const Completion& c);
  Step on_buffer(Session& s, Dir dir);
  Step retry(Session& s);
  // Applies what a phase said: wait, another phase (started at once), close or finish.
  void apply(Session& s, Step step);
  void close(Session& s, metrics::CloseReason reason);
  void maybe_free(Session& s);
  void free(Session& s);
  // After a change that may bring the session's deadline closer: its timer moves there. Later
  // deadlines are left for the timer to find when it fires, so activity never touches it.
  void rearm(Session& s);
  // Buffers given back during a completion went to waiting flows: each now receives.
  void hand_out_grants();
  // The record at close, or an interim one (`update`: access-log-interval) of a session still open.
  void log_access(const Session& s, metrics::CloseReason reason, bool update = false);
  // The session's timer found a wake-up due (deadlines.h: next_wake): an interim record, a held
  // recv let go.
  void wake(Session& s);
  // The listeners' policies changed (a reload): their timeouts, and removed listeners' sessions.
  void take_policies();
  // A reload published `snapshot` for `cluster`: sessions to backends it dropped may finish
  // until the drain deadline.
  void drain_removed(uint16_t cluster, const balancer::Snapshot& snapshot);
  Timeouts timeouts_for(const Session& s) const;
  void set_live(uint32_t live);
  // The session's handshake is over (it routes, or it closes): its counts are released.
  void end_handshake(Session& s);
  void dispatch_queue();

  // QueueVisitor.
  bool current(uint32_t id, uint64_t ticket) override;
  bool can_go(uint32_t id) override;
  void go(uint32_t id) override;

  Env& env_;
  Ops& ops_;
  SnapshotCache& snapshots_;
  std::vector<Session> sessions_;
  Extras extras_;
  Io io_;
  Admit admit_;
  InspectProxy inspect_proxy_;
  InspectTls inspect_tls_;
  TlsAccept tls_accept_;
  Route route_;
  Connect connect_;
  TlsConnect tls_connect_;
  Pump pump_;
  std::vector<uint32_t> free_;
  uint32_t live_ = 0;
  std::vector<Timeouts> timeouts_;  // by listener
  std::vector<FlowRef> after_batch_;
  bool queue_poll_armed_ = false;
};

}  // namespace ringlb::proxy
