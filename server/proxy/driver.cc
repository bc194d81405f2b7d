#include "server/proxy/driver.h"

#include <liburing.h>
#include <time.h>

#include <cerrno>

#include "server/base/clock.h"
#include "server/base/log.h"
#include "server/limits/shared_source_table.h"
#include "server/proxy/tags.h"

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;

// After the kernel dropped completions, a session that has been closing this long is freed
// even if it still counts completions in flight: they may never come.
constexpr uint64_t kLostCompletionGraceNs = 10'000'000'000ULL;

// What a session's deadline is computed from, but for the times themselves: when it changes,
// the deadline may have come closer.
uint16_t timer_key(const Session& s) {
  // The phase in the low byte (there are more than 8 phases), a bit for each other input above
  // it; a held recv (rate_limit.h) is a wake-up of its own per direction.
  return static_cast<uint16_t>(static_cast<uint16_t>(s.phase) | (s.rate[kUp].held() ? 0x100 : 0) |
                               (s.queued ? 0x200 : 0) | (s.half_closed() ? 0x400 : 0) |
                               (s.deadline_ns != 0 ? 0x800 : 0) | (s.rate[kDown].held() ? 0x1000 : 0));
}

}  // namespace

Driver::Driver(Env& env, Ops& ops, SnapshotCache& snapshots, uint32_t capacity)
    : env_(env),
      ops_(ops),
      snapshots_(snapshots),
      sessions_(capacity),
      extras_(capacity),
      io_(ops, env, sessions_),
      admit_(env, io_, snapshots),
      inspect_proxy_(env, io_, snapshots, extras_),
      inspect_tls_(env, io_, extras_),
      tls_accept_(env, io_, snapshots, extras_),
      route_(env, io_, snapshots, extras_),
      connect_(env, io_, extras_),
      tls_connect_(env, io_, extras_),
      pump_(env, io_, extras_) {
  free_.reserve(capacity);
  for (uint32_t i = capacity; i > 0; --i) {
    sessions_[i - 1].id = i - 1;
    free_.push_back(i - 1);
  }
  take_policies();
}

void Driver::set_live(uint32_t live) {
  live_ = live;
  env_.stats.active.set(live_);
  env_.shared.workers[env_.worker]->active.store(live_, std::memory_order_relaxed);
}

int Driver::open(int client, uint16_t listener, uint32_t accept_us) {
  env_.stats.received.add();
  env_.stats.open_slots.add();
  if (snapshots_.refresh_policies()) take_policies();  // a reload's limits apply from its next client
  // While draining too: the acceptor took this client before it stopped accepting, and it is
  // served within the drain deadline like the others.
  if (free_.empty()) {
    env_.stats.close(CloseReason::k_max_connections).add();
    ops_.close(client);
    env_.stats.open_slots.sub();
    return -1;
  }
  Session& s = sessions_[free_.back()];
  free_.pop_back();
  const uint8_t gen = s.gen;
  const uint32_t id = s.id;
  s = Session{};
  s.id = id;
  s.gen = gen;
  s.client = client;
  s.listener = listener;
  s.start_ns = s.last_active_ns = env_.now_ns;
  s.accept_us = accept_us;
  s.cluster = env_.shared.routes[listener].cluster;  // until an SNI listener's route picks one
  // Accepted just before a reload removed its listener: served until the drain deadline.
  if (snapshots_.policy(listener).removed) s.deadline_ns = env_.now_ns + to_ns(env_.config.drain_timeout);
  // Operator features: its listener's bandwidth limits (the pump adds its cluster's), and its
  // first interim access-log record (access-log-interval), both served by its one timer.
  s.rate[kUp].bucket.start(snapshots_.policy(listener).upload_rate, env_.config.buffer_size, env_.now_ns);
  s.rate[kDown].bucket.start(snapshots_.policy(listener).download_rate, env_.config.buffer_size, env_.now_ns);
  if (env_.shared.access_log != nullptr && env_.config.access_log_interval.count() > 0) {
    s.next_update_ns = s.start_ns + to_ns(env_.config.access_log_interval);
  }
  set_live(live_ + 1);
  apply(s, Step::to(Phase::kAdmit));
  return static_cast<int>(id);
}

Step Driver::start(Session& s) {
  switch (s.phase) {
    case Phase::kAdmit: return admit_.start(s);
    case Phase::kProxyHeader: return inspect_proxy_.start(s);
    case Phase::kClientHello: return inspect_tls_.start(s);
    case Phase::kTlsAccept: return tls_accept_.start(s);
    case Phase::kRoute: return route_.start(s);
    case Phase::kConnect: return connect_.start(s);
    case Phase::kTlsConnect: return tls_connect_.start(s);
    case Phase::kPump: return pump_.start(s);
    default: return Step::close(CloseReason::k_error);
  }
}

Step Driver::dispatch(Session& s, const Completion& c) {
  const Phase phase = phase_of(static_cast<Tag>(c.tag));
  if (phase != s.phase) {
    // Every phase waits for its own completions before it moves on: this is a bug.
    log(LogLevel::kError, "worker %u: session %u in phase %s got a completion of phase %s (tag %u)", env_.worker,
        s.id, phase_name(s.phase), phase_name(phase), static_cast<unsigned>(c.tag));
    io_.release(c.buf);
    return Step::close(CloseReason::k_error);
  }
  switch (phase) {
    case Phase::kAdmit: return admit_.on_completion(s, c);
    case Phase::kProxyHeader: return inspect_proxy_.on_completion(s, c);
    case Phase::kClientHello: return inspect_tls_.on_completion(s, c);
    case Phase::kTlsAccept: return tls_accept_.on_completion(s, c);
    case Phase::kRoute: return route_.on_completion(s, c);
    case Phase::kConnect: return connect_.on_completion(s, c);
    case Phase::kTlsConnect: return tls_connect_.on_completion(s, c);
    case Phase::kPump: return pump_.on_completion(s, c);
    default: return Step::close(CloseReason::k_error);
  }
}

Step Driver::on_buffer(Session& s, Dir dir) {
  switch (s.phase) {
    case Phase::kProxyHeader: return inspect_proxy_.on_buffer(s);
    case Phase::kClientHello: return inspect_tls_.on_buffer(s);
    case Phase::kTlsAccept: return tls_accept_.on_buffer(s);
    case Phase::kTlsConnect: return tls_connect_.on_buffer(s);
    case Phase::kPump: return pump_.on_buffer(s, dir);
    default: return Step::wait();
  }
}

Step Driver::retry(Session& s) {
  if (s.phase == Phase::kConnect) return connect_.retry(s);
  return Step::wait();
}

void Driver::on_completion(Tag tag, uint32_t index, int res, uint32_t flags) {
  const uint32_t id = session_of(index);
  if (id >= sessions_.size() || sessions_[id].gen != gen_of(index) || sessions_[id].phase == Phase::kFree) {
    // Meant for an earlier session of this slot (freed after lost completions): drop it, giving
    // back what it holds.
    env_.stats.stale_completions.add();
    io_.release(io_.take_buffer(flags));
    if (tag == Tag::kConnectSocket && res >= 0) ops_.close(res);
    hand_out_grants();
    return;
  }
  Session& s = sessions_[id];
  if (!(flags & IORING_CQE_F_MORE)) --s.inflight;
  Completion c{static_cast<uint8_t>(tag), res, flags, -1};
  const int dir = recv_dir_of(tag);
  if (dir >= 0) c.buf = io_.take_recv_buffer(s.flow[dir], flags);
  if (tag == Tag::kConnectSocket && res >= 0) {
    env_.stats.open_slots.add();
    s.backend = res;  // the driver's from now on: closed when the session is freed
  }
  if (s.phase == Phase::kClosing) {
    io_.release(c.buf);
    maybe_free(s);
  } else if (tag != Tag::kSessionCancel) {
    apply(s, dispatch(s, c));
  }
  hand_out_grants();
}

void Driver::apply(Session& s, Step step) {
  for (;;) {
    if (step.kind == Step::Kind::kClose) return close(s, step.reason);
    if (step.kind != Step::Kind::kNext) break;
    if (s.handshaking && step.next != Phase::kProxyHeader && step.next != Phase::kClientHello &&
        step.next != Phase::kTlsAccept) {
      end_handshake(s);
    }
    s.phase = step.next;
    s.phase_ns = env_.now_ns;
    step = start(s);
  }
  if (step.kind == Step::Kind::kAfterBatch) after_batch_.push_back({s.id, 0, s.gen});
  if (step.kind == Step::Kind::kFinish) {
    s.finishing = true;
    s.closed_as = step.reason;
  }
  if (s.finishing && s.inflight == 0) return close(s, s.closed_as);
  if (timer_key(s) != s.timer_key) rearm(s);
}

void Driver::rearm(Session& s) {
  s.timer_key = timer_key(s);
  if (s.phase == Phase::kClosing || s.phase == Phase::kFree) return;
  const Deadline d = next_deadline(s, timeouts_for(s));
  if (d.at_ns == UINT64_MAX) return;
  uint64_t at = 0;
  if (!ops_.scheduled(s.id, &at) || d.at_ns < at) ops_.schedule(s.id, d.at_ns);
}

void Driver::on_timer(uint32_t id) {
  Session& s = sessions_[id];
  if (s.phase == Phase::kClosing) {
    // Only armed after lost completions: stop waiting for them.
    log(LogLevel::kWarning, "worker %u: session %u freed with %u completions unaccounted for", env_.worker, id,
        s.inflight);
    s.inflight = 0;
    return maybe_free(s);
  }
  if (s.phase == Phase::kFree) return;
  const Timeouts t = timeouts_for(s);
  const Deadline expired = expired_deadline(s, t, env_.now_ns);
  if (expired.at_ns != UINT64_MAX) return close(s, expired.reason);
  if (next_wake(s) <= env_.now_ns) {
    wake(s);
    if (s.phase == Phase::kClosing || s.phase == Phase::kFree) return;
  }
  const Deadline next = next_deadline(s, t);
  if (next.at_ns != UINT64_MAX) ops_.schedule(id, next.at_ns);
}

void Driver::wake(Session& s) {
  if (s.next_update_ns != 0 && s.next_update_ns <= env_.now_ns) {
    log_access(s, s.closed_as, true);
    s.next_update_ns = next_update_at(s.start_ns, to_ns(env_.config.access_log_interval), env_.now_ns);
  }
  for (Dir dir : {kUp, kDown}) {
    const RateLimit& r = s.rate[dir];
    if (s.phase == Phase::kPump && r.held() && r.held_until_ns <= env_.now_ns) apply(s, pump_.on_resume(s, dir));
  }
  hand_out_grants();  // a hold gives a granted buffer back
}

void Driver::close(Session& s, CloseReason reason) {
  if (s.phase == Phase::kClosing || s.phase == Phase::kFree) return;
  // The TLS handshakes' outcomes are counted by their phases, whatever closed them.
  if (s.phase == Phase::kTlsAccept) tls_accept_.on_close(s, reason);
  if (s.phase == Phase::kTlsConnect) tls_connect_.on_close(s, reason);
  if (s.queued) {
    s.queued = false;
    s.queue_wait_ns += env_.now_ns - s.queued_ns;
    ops_.left_queue();
    env_.stats.queued.set(ops_.queued());
  }
  s.phase = Phase::kClosing;
  s.closing_ns = env_.now_ns;
  end_handshake(s);
  s.closed_as = reason;
  if (env_.shared.access_log != nullptr) log_access(s, reason);
  s.flow[kUp].waiting = s.flow[kDown].waiting = false;
  ops_.unschedule(s.id);
  if (env_.completions_lost) ops_.schedule(s.id, s.closing_ns + kLostCompletionGraceNs);
  if (s.inflight > 0) {
    // Outstanding recvs would otherwise wait for data forever; cancel everything on both slots.
    for (int slot : {s.client, s.backend}) {
      if (slot < 0) continue;
      ops_.cancel_slot(slot, encode(Tag::kSessionCancel, session_index(s.id, s.gen), env_.now_us));
      ++s.inflight;
    }
  }
  maybe_free(s);
}

void Driver::maybe_free(Session& s) {
  if (s.phase != Phase::kClosing || s.inflight > 0) return;
  // Nothing is in flight on either socket now; the closes run in submission order, after any
  // shutdown queued before them, and nothing waits for their completions.
  for (int* slot : {&s.client, &s.backend}) {
    if (*slot < 0) continue;
    ops_.close(*slot);
    env_.stats.open_slots.sub();
    *slot = -1;
  }
  free(s);
}

void Driver::free(Session& s) {
  ops_.unschedule(s.id);
  // Buffers still held: bytes never sent, or a grant whose recv never came.
  pump_.release_flows(s);
  for (Flow& flow : s.flow) {
    io_.release(flow.granted);
    flow.granted = -1;
  }
  inspect_proxy_.forget(s.id);
  if (TlsLink* link = extras_.tls(s.id)) {
    // Buffers a handshake left for the pump, which never came to it.
    io_.release(link->client.held);
    io_.release(link->backend.held);
    extras_.drop_tls(s.id);
  }
  s.tls_client = s.tls_backend = false;
  end_handshake(s);
  count_backend(s, false);
  if (s.listener_counted) {
    env_.shared.listener_active[s.listener].fetch_sub(1, std::memory_order_relaxed);
    s.listener_counted = false;
  }
  for (auto [table, key] : {std::pair{&s.source_table, &s.source}, std::pair{&s.named_source_table, &s.named_source}}) {
    if (*table == nullptr) continue;
    (*table)->release(*key);
    *table = nullptr;
  }
  snapshots_.release(s.snap);
  s.snap = nullptr;
  s.phase = Phase::kFree;
  ++s.gen;
  free_.push_back(s.id);
  set_live(live_ - 1);
  // Counted after the live count drops, so that a scrape (which reads closed, then live, then
  // accepted) never counts a session twice.
  env_.stats.close(s.closed_as).add();
}

void Driver::end_handshake(Session& s) {
  if (s.handshaking) {
    env_.shared.listener_handshakes[s.listener].fetch_sub(1, std::memory_order_relaxed);
    s.handshaking = false;
  }
  if (s.handshake_table != nullptr) {
    s.handshake_table->release(s.handshake_source);
    s.handshake_table = nullptr;
  }
}

void Driver::hand_out_grants() {
  while (!io_.grants().empty()) {
    std::vector<FlowRef> grants;
    grants.swap(io_.grants());
    for (const FlowRef& g : grants) {
      Session& s = sessions_[g.id];
      // Closed since (its grant is given back when it is freed): nothing to do.
      if (s.gen != g.gen || s.phase == Phase::kClosing || s.phase == Phase::kFree) continue;
      apply(s, on_buffer(s, static_cast<Dir>(g.dir)));
    }
  }
}

void Driver::after_batch() {
  if (!after_batch_.empty()) {
    std::vector<FlowRef> due;
    due.swap(after_batch_);
    for (const FlowRef& r : due) {
      Session& s = sessions_[r.id];
      // Closed meanwhile (perhaps reused): nothing to do.
      if (s.gen == r.gen && s.phase != Phase::kClosing && s.phase != Phase::kFree) apply(s, retry(s));
    }
  }
  dispatch_queue();
  if (ops_.queued() > 0 && !queue_poll_armed_) {
    ops_.arm_queue_poll();
    queue_poll_armed_ = true;
  }
}

void Driver::on_queue_poll() {
  queue_poll_armed_ = false;
  after_batch();
}

void Driver::dispatch_queue() {
  if (ops_.queued() > 0) ops_.dispatch_queue(*this);
  hand_out_grants();
}

bool Driver::current(uint32_t id, uint64_t ticket) {
  const Session& s = sessions_[id];
  return s.phase == Phase::kConnect && s.queued && s.queue_ticket == ticket;
}

bool Driver::can_go(uint32_t id) { return sessions_[id].snap->picker->can_take(sessions_[id].tried); }

void Driver::go(uint32_t id) {
  Session& s = sessions_[id];
  s.queued = false;
  s.queue_wait_ns += env_.now_ns - s.queued_ns;
  s.queue_ticket = 0;
  env_.stats.queued.set(ops_.queued());
  apply(s, connect_.on_dequeued(s));
}

void Driver::on_tick() {
  if (snapshots_.refresh_policies()) take_policies();
  snapshots_.refresh_clusters(env_.now_ns, [this](uint16_t cluster, const balancer::Snapshot& snapshot) {
    drain_removed(cluster, snapshot);
  });
  // After lost completions, or as a safety net: waiters get the buffers the ring still has.
  uint32_t n = ops_.buffers_in_ring();
  FlowRef ref;
  while (n > 0 && ops_.next_waiter(&ref)) {
    if (!io_.still_waiting(ref)) continue;
    --n;
    Session& s = sessions_[ref.id];
    s.flow[ref.dir].waiting = false;
    apply(s, on_buffer(s, static_cast<Dir>(ref.dir)));
  }
  hand_out_grants();
}

void Driver::take_policies() {
  const ListenerPolicies& policies = snapshots_.policies();
  timeouts_.assign(policies.listeners.size(), Timeouts{});
  bool any_removed = false;
  for (size_t i = 0; i < policies.listeners.size(); ++i) {
    const ListenerPolicy& p = policies.listeners[i];
    Timeouts& t = timeouts_[i];
    t.idle_ns = to_ns(p.idle_timeout);
    t.fin_ns = to_ns(p.fin_timeout);
    t.max_duration_ns = to_ns(p.max_connection_duration);
    t.proxy_header_ns = to_ns(p.proxy_header_timeout);
    t.tls_inspect_ns = to_ns(p.tls_inspect_timeout);
    t.tls_handshake_ns = to_ns(p.tls_handshake_timeout);
    any_removed = any_removed || p.removed;
  }
  if (!any_removed) return;
  // A reload removed a listener: its sessions may finish until the drain deadline. Rare, so one
  // pass over the sessions is fine here.
  const uint64_t deadline = env_.now_ns + to_ns(env_.config.drain_timeout);
  for (Session& s : sessions_) {
    if (s.phase == Phase::kFree || s.phase == Phase::kClosing || s.deadline_ns != 0 ||
        !policies.listeners[s.listener].removed) {
      continue;
    }
    s.deadline_ns = deadline;
    rearm(s);
  }
}

void Driver::drain_removed(uint16_t cluster, const balancer::Snapshot& snapshot) {
  std::vector<bool> present(balancer::BackendRegistry::kCapacity, false);
  for (const balancer::BackendSpec& b : snapshot.backends) present[b.id] = true;
  const uint64_t deadline = env_.now_ns + to_ns(env_.config.drain_timeout);
  for (Session& s : sessions_) {
    if (s.phase == Phase::kFree || s.phase == Phase::kClosing || s.snap == nullptr || s.cluster != cluster ||
        s.backend_index < 0 || present[s.backend_id] || s.deadline_ns != 0) {
      continue;
    }
    s.deadline_ns = deadline;
    rearm(s);
  }
}

Timeouts Driver::timeouts_for(const Session& s) const {
  Timeouts t = timeouts_[s.listener];
  if (s.snap != nullptr) {
    t.queue_ns = s.snap->queue_ns;
    t.connect_ns = uint64_t{s.snap->snapshot->connect_timeout_ms} * 1'000'000ULL;
  }
  return t;
}

void Driver::close_all(CloseReason reason) {
  for (Session& s : sessions_) {
    if (s.phase != Phase::kFree && s.phase != Phase::kClosing) close(s, reason);
  }
  hand_out_grants();
}

void Driver::on_completions_lost() {
  env_.completions_lost = true;
  for (Session& s : sessions_) {
    if (s.phase == Phase::kClosing) ops_.schedule(s.id, s.closing_ns + kLostCompletionGraceNs);
  }
}

void Driver::log_access(const Session& s, CloseReason reason, bool update) {
  timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  const int64_t now_unix_us = static_cast<int64_t>(wall.tv_sec) * 1'000'000 + wall.tv_nsec / 1000;
  AccessRecord r;
  r.start_unix_us = now_unix_us - static_cast<int64_t>((env_.now_ns - s.start_ns) / 1000);
  r.client = s.has_peer ? reinterpret_cast<const sockaddr*>(&s.peer) : nullptr;
  r.listener = env_.shared.listen_bound[s.listener].get();
  r.listener_name = &env_.shared.routes[s.listener].name;  // set before it accepted, never changed
  // An SNI listener's session has a cluster once routed; any other's from the start.
  if (s.snap != nullptr || !env_.shared.routes[s.listener].sni) r.cluster = &env_.shared.backends.cluster_name(s.cluster);
  if (s.has_server_name) r.sni = &extras_.server_names[s.id];
  if (s.backend_index >= 0) r.backend = &s.snap->snapshot->backends[static_cast<size_t>(s.backend_index)].name;
  r.worker = env_.worker;
  r.queue_us = static_cast<int64_t>(s.queue_wait_ns / 1000);
  r.connect_attempts = s.attempts;
  if (s.connected_ns != 0) r.connect_us = static_cast<int64_t>((s.connected_ns - s.connect_start_ns) / 1000);
  r.duration_us = static_cast<int64_t>((env_.now_ns - s.start_ns) / 1000);
  r.bytes_from_client = s.bytes[kUp];
  r.bytes_from_backend = s.bytes[kDown];
  r.update = update;
  r.close_reason = update ? nullptr : metrics::close_reason_name(reason);
  if (const TlsLink* link = extras_.tls(s.id); link != nullptr && s.tls_client && link->client.stream &&
                                               link->client.stream->handshake_done()) {
    const tls::Stream& stream = *link->client.stream;
    r.tls_version = stream.version();
    r.tls_cipher = stream.cipher();
    r.alpn = stream.alpn();
    if (!link->client_cn.empty()) r.client_cn = &link->client_cn;
  }
  ops_.log_access(r);
}

}  // namespace ringlb::proxy
