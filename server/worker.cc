#include "server/worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "balancer/hash.h"
#include "server/clock.h"
#include "server/control/diagnostics.h"
#include "server/uring/compat.h"

namespace ringlb {
namespace {

using metrics::CloseReason;
using metrics::Op;

constexpr uint64_t kTickNs = 200'000'000;
constexpr uint64_t kQueuePollNs = 10'000'000;
// One quiet op in this many still posts its completion, so its latency is measured.
constexpr uint32_t kSampleEvery = 64;
constexpr uint16_t kBufferGroup = 0;
// In a kDiagInstall's index, beside the connection id: the install is of its backend socket.
// The top bit of the 24-bit index: connection ids stay below --max-connections (at most 10^6).
constexpr uint32_t kDiagBackendSide = 1u << 23;

// The op whose completion latency a tag measures, or kCount for none.
Op op_of(Tag tag) {
  switch (tag) {
    case Tag::kSocket: return Op::k_socket;
    case Tag::kConnect: return Op::k_connect;
    case Tag::kRecvClient:
    case Tag::kRecvBackend:
    case Tag::kRecvProxyHeader: return Op::k_recv;
    case Tag::kSendClient:
    case Tag::kSendBackend:
    case Tag::kSendProxyHeader: return Op::k_send;
    case Tag::kShutdown: return Op::k_shutdown;
    case Tag::kCancel: return Op::k_cancel;
    case Tag::kQuietClose: return Op::k_close;
    default: return Op::kCount;
  }
}

__kernel_timespec to_timespec(uint64_t ns) {
  __kernel_timespec ts{};
  ts.tv_sec = static_cast<long long>(ns / 1'000'000'000ULL);
  ts.tv_nsec = static_cast<long long>(ns % 1'000'000'000ULL);
  return ts;
}

}  // namespace

Worker::Worker(SharedState& shared, unsigned index, uring::BufferRegion& region)
    : shared_(shared),
      config_(shared.config),
      index_(index),
      region_(region),
      slot_(*shared.workers[index]),
      stats_(*shared.registry->workers[index]) {}

void Worker::run(std::promise<int>* ready) {
  const std::string name = "ringlb-w" + std::to_string(index_);
  pthread_setname_np(pthread_self(), name.c_str());  // for top -H, perf and /proc
  int ret = setup();
  ready->set_value(ret < 0 ? ret : ring_.fd());
  if (ret < 0) return;
  loop();
  flush_access_log();
  slot_.stopped.store(true);
}

int Worker::fail(const char* step, int ret) {
  fprintf(stderr, "ringlb: worker %u: %s: %s\n", index_, step, strerror(-ret));
  return ret;
}

int Worker::setup() {
  const unsigned capacity = slot_.capacity;
  uring::RingOptions options;
  options.entries = 1024;
  // Each connection has a handful of completions pending at most; the CQ must never overflow,
  // or acceptor hand-offs would take the kernel's slow overflow path.
  options.cq_entries = std::min(65536u, std::max(8192u, capacity * 8));  // kernel max: 65536
  if (int ret = ring_.init(options); ret < 0) return fail("io_uring_setup", ret);
  // Passing the registered ring index instead of the fd saves an fd lookup per io_uring_enter.
  io_uring_register_ring_fd(ring_.get());
  // Only SHUTDOWN goes to io-wq here (the kernel always punts it); it never blocks for long, so
  // a couple of io-wq threads per worker are plenty. Unbounded, bursts spawn one per request.
  unsigned iowq_workers[2] = {1, 2};  // bounded (file I/O), unbounded (sockets)
  io_uring_register_iowq_max_workers(ring_.get(), iowq_workers);
  if (!config_.cpus.empty()) {
    // --cpu-affinity: this thread and the io-wq threads that run its SHUTDOWNs share one CPU, so
    // handing work between them is a local wake-up rather than an interrupt to another CPU.
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(config_.cpus[index_ % config_.cpus.size()], &set);
    if (int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); err != 0) {
      return fail("setting the CPU affinity", -err);
    }
    if (int ret = io_uring_register_iowq_aff(ring_.get(), sizeof(set), &set); ret < 0) {
      return fail("setting the io-wq CPU affinity", ret);
    }
  }
  if (int ret = table_.init(ring_, table_slots(capacity)); ret < 0) {
    return fail("registering the descriptor table", ret);
  }
  if (config_.iowq_batch) {
    if (int ret = create_batch_iowq_thread(); ret < 0) {
      fprintf(stderr, "ringlb: worker %u: SCHED_BATCH io-wq thread: %s (left as is)\n", index_, strerror(-ret));
    }
  }
  if (int ret = region_.clone_into(ring_); ret < 0) return fail("clone_buffers", ret);
  if (int ret = buffers_.init(ring_, kBufferGroup, region_.part(index_), config_.buffers_per_worker,
                              config_.buffer_size);
      ret < 0) {
    return fail("registering the provided-buffer ring", ret);
  }
  conns_.resize(capacity);
  peer_names_.resize(capacity);
  free_.reserve(capacity);
  for (uint32_t i = capacity; i > 0; --i) free_.push_back(i - 1);
  waiters_.reserve(capacity * 2);
  tick_ts_ = to_timespec(kTickNs);
  queue_poll_ts_ = to_timespec(kQueuePollNs);
  connect_ts_ = to_timespec(to_ns(config_.connect_timeout));
  now_ns_ = monotonic_ns();
  now_us_ = micros32(now_ns_);
  arm_tick();
  return 0;
}

int Worker::create_batch_iowq_thread() {
  // io-wq threads are created on demand by the thread that queues work, and inherit its
  // scheduling policy. SHUTDOWN goes to the bounded queue, which this worker limits to one
  // thread; as the last of its queue that thread never exits, so creating it now, while this
  // thread is briefly SCHED_BATCH, makes every SHUTDOWN run SCHED_BATCH. Measured
  // (bench/README.md): queueing one then no longer preempts the worker (which would also make
  // io-wq wait for the ring lock the worker holds); it runs when the worker yields, several at a
  // time, and the process switches 40% less often per connection in close mode.
  int policy = SCHED_OTHER;
  sched_param saved{};
  if (int err = pthread_getschedparam(pthread_self(), &policy, &saved); err != 0) return -err;
  const sched_param batch{};
  if (int err = pthread_setschedparam(pthread_self(), SCHED_BATCH, &batch); err != 0) return -err;
  // A SHUTDOWN of a slot nothing uses yet: the kernel still hands it to io-wq, creating the
  // thread, where it fails with -EBADF.
  const int empty_slot = static_cast<int>(table_slots(slot_.capacity) - 1);
  const int ret = uring::run_one(ring_, [&](io_uring_sqe* sqe) {
    io_uring_prep_shutdown(sqe, empty_slot, SHUT_WR);
    sqe->flags |= IOSQE_FIXED_FILE;
  });
  if (int err = pthread_setschedparam(pthread_self(), policy, &saved); err != 0) return -err;
  return ret == -EBADF || ret >= 0 ? 0 : ret;
}

void Worker::loop() {
  for (;;) {
    // SHUTDOWNs go last in the batch: the io-wq thread that runs one takes this ring's lock to
    // look up the fixed slot, and the lock is free once this thread is done submitting. Queued
    // in between, io-wq spun on the lock (a third of its time at 1000 connections).
    for (const FlowRef& w : shutdowns_) {
      const Conn& conn = conns_[w.conn];
      io_uring_sqe* sqe = ring_.sqe();
      io_uring_prep_shutdown(sqe, w.dir == kUp ? conn.backend : conn.client, SHUT_WR);
      sqe->flags |= IOSQE_FIXED_FILE;
      sqe->user_data = data(Tag::kShutdown, w.conn);
    }
    shutdowns_.clear();
    if (int ret = ring_.submit_and_wait_one(); ret < 0) {
      fprintf(stderr, "ringlb: worker %u: io_uring_submit_and_wait: %s\n", index_, strerror(-ret));
    }
    now_ns_ = monotonic_ns();
    now_us_ = micros32(now_ns_);
    ring_.reap([this](const io_uring_cqe* cqe) { handle(cqe); });
    if (queued_ > 0) dispatch_queue();
    if (draining_ && live_ == 0) break;
  }
}

void Worker::handle(const io_uring_cqe* cqe) {
  const uint64_t data = cqe->user_data;
  const Tag tag = tag_of(data);
  const uint32_t id = index_of(data);
  const Op op = op_of(tag);
  if (op != Op::kCount && config_.metrics_enabled) {
    stats_.op(op).observe_ns(elapsed_ns_since(time_of(data), now_ns_));
  }
  switch (tag) {
    case Tag::kHandoff: return on_handoff(cqe->res, id, time_of(data));
    case Tag::kLostHandoff: return on_lost_handoff(id, time_of(data));
    case Tag::kAuditProbe: return on_audit_probe(id, cqe->res);
    case Tag::kPeerName: return on_peer_name(id, cqe->res);
    case Tag::kRecvProxyHeader: return on_client_header(id, cqe->res, cqe->flags);
    case Tag::kControl: return on_control(id);
    case Tag::kDiagInstall:
      return on_diagnostics_install(id & ~kDiagBackendSide, (id & kDiagBackendSide) != 0, cqe->res);
    case Tag::kTick: return on_tick();
    case Tag::kQueuePoll:
      queue_poll_armed_ = false;
      dispatch_queue();
      if (queued_ > 0) arm_queue_poll();
      return;
    case Tag::kSocket: return on_socket(id, cqe->res);
    case Tag::kConnect: return on_connect(id, cqe->res);
    case Tag::kCancel:
      --conns_[id].inflight;
      return maybe_finish(id);
    case Tag::kRecvClient: return on_recv(id, kUp, cqe->res, cqe->flags);
    case Tag::kRecvBackend: return on_recv(id, kDown, cqe->res, cqe->flags);
    case Tag::kSendBackend: return on_send(id, kUp, cqe->res);
    case Tag::kSendClient: return on_send(id, kDown, cqe->res);
    case Tag::kSendProxyHeader: return on_proxy_header(id, cqe->res);
    case Tag::kQuietSockopt:
      return;  // a failure cancels the linked connect, which reports it
    case Tag::kQuietConnectTimeout:
      return;  // the connect it cancelled reports -ECANCELED
    case Tag::kQuietMessage:
      // Only a failure gets here: the acceptor is gone (shutting down); nothing waits for it.
      return;
    case Tag::kShutdown:
      --conns_[id].inflight;
      if (conns_[id].state == State::kClosing) return maybe_finish(id);
      return maybe_close_after_eof(id);
    case Tag::kQuietClose:
      if (cqe->res < 0) {
        fprintf(stderr, "ringlb: worker %u: close_direct: %s\n", index_, strerror(-cqe->res));
      }
      return;
    default:
      fprintf(stderr, "ringlb: worker %u: completion with unknown tag %u\n", index_,
              static_cast<unsigned>(tag));
      return;
  }
}

void Worker::on_control(uint32_t what) {
  if (what == kControlDiagnostics) return start_diagnostics();
  if (!draining_) {
    draining_ = true;
    drain_deadline_ns_ = now_ns_ + to_ns(config_.drain_timeout);
  }
}

void Worker::start_diagnostics() {
  // A regular fd per socket, only long enough to read its addresses and TCP_INFO: the one place
  // besides upgrades where a direct descriptor becomes a regular fd.
  diagnostics_.clear();
  diagnostics_pending_ = 0;
  for (uint32_t id = 0; id < conns_.size(); ++id) {
    const Conn& conn = conns_[id];
    if (conn.state != State::kProxying) continue;
    for (const bool backend_side : {false, true}) {
      io_uring_sqe* sqe = ring_.sqe();
      uring::prep_fixed_fd_install(sqe, backend_side ? conn.backend : conn.client, 0);
      sqe->user_data = data(Tag::kDiagInstall, id | (backend_side ? kDiagBackendSide : 0));
      ++diagnostics_pending_;
    }
  }
  if (diagnostics_pending_ == 0) finish_diagnostics();
}

void Worker::on_diagnostics_install(uint32_t id, bool backend_side, int res) {
  if (res >= 0) {
    stats_.fd_installs_diagnostics.add();
    const Conn& conn = conns_[id];
    std::string side = " side=client";
    if (backend_side) {
      // The connection may have ended while the install ran; the socket is still described.
      side = " side=backend";
      if (conn.state != State::kFree && conn.snap != nullptr && conn.backend_index >= 0) {
        side += " backend=" + conn.snap->snapshot->backends[static_cast<size_t>(conn.backend_index)].name;
      }
    }
    diagnostics_ += "worker=" + std::to_string(index_) + " conn=" + std::to_string(id) + side + " " +
                    describe_socket(res) + "\n";
    close(res);
  }
  if (--diagnostics_pending_ == 0) finish_diagnostics();
}

void Worker::finish_diagnostics() {
  {
    std::lock_guard<std::mutex> lock(slot_.diagnostics_mu);
    slot_.diagnostics = diagnostics_;
  }
  io_uring_sqe* sqe = ring_.sqe();
  uring::prep_msg_ring_data(sqe, shared_.acceptor_ring_fd, 0, encode(Tag::kDiagDone, index_, now_us_));
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  sqe->user_data = data(Tag::kQuietMessage, 0);
}

void Worker::on_handoff(int res, uint32_t listener, uint32_t stamp_us) {
  if (res < 0) return;  // nothing arrived; the acceptor counted its own side
  if (config_.metrics_enabled) stats_.handoff_latency.observe_ns(elapsed_ns_since(stamp_us, now_ns_));
  stats_.received.add();
  stats_.open_slots.add();
  // While draining too: the acceptor took this client before it stopped accepting, and it is
  // served within the drain deadline like the others.
  if (free_.empty()) {
    stats_.close(CloseReason::k_max_connections).add();
    close_slot(res);
    return;
  }
  const uint32_t id = free_.back();
  free_.pop_back();
  Conn& conn = conns_[id];
  conn = Conn{};
  conn.state = State::kConnecting;
  conn.client = res;
  conn.listener = static_cast<uint16_t>(listener);
  conn.start_ns = now_ns_;
  conn.accept_us = stamp_us;
  conn.last_active_ns = now_ns_;
  conn.snap = current_snapshot();
  ++conn.snap->conns;
  ++live_;
  stats_.active.set(live_);
  slot_.active.store(live_, std::memory_order_relaxed);
  if (shared_.config.listen[listener].accept_proxy) {
    conn.state = State::kProxyHeader;
    conn.flow[kUp].expect_data = true;  // the proxy in front sends its header at once
    return arm_recv(id, kUp);
  }
  identify_client(id);
}

// A lost hand-off: the acceptor's msg_ring installed a client descriptor in a slot of this ring's
// table that the kernel picked, but posted no completion (msg_ring -EOVERFLOW), so nothing here
// knows the slot. Every slot that no connection holds (client or backend side) is probed with a
// getsockopt(SO_DOMAIN): an empty slot answers -EBADF. Race-free: hand-offs are installed by
// this thread's task_work and post their completion at install, and socket_direct_alloc
// completes inline, so a slot filled before a probe ran has its completion ahead of the probe's
// in the CQ and is held (or closed) by the time the probe's completion is handled.
void Worker::on_lost_handoff(uint32_t listener, uint32_t stamp_us) {
  const unsigned slots = table_slots(slot_.capacity);
  std::vector<bool> held(slots, false);
  for (const Conn& conn : conns_) {
    if (conn.client >= 0) held[static_cast<size_t>(conn.client)] = true;
    if (conn.backend >= 0) held[static_cast<size_t>(conn.backend)] = true;
  }
  Audit audit{listener, stamp_us, 0};
  for (unsigned slot = 0; slot < slots; ++slot) {
    if (held[slot]) continue;
    io_uring_sqe* sqe = ring_.sqe();
    uring::prep_cmd_sock_direct(sqe, uring::kSocketOpGetsockopt, static_cast<int>(slot), SOL_SOCKET,
                                SO_DOMAIN, &audit_value_, sizeof(audit_value_));
    sqe->user_data = data(Tag::kAuditProbe, slot);
    ++audit.probes;
  }
  if (audit.probes > 0) audits_.push_back(audit);
}

// One probe of an audit (on_lost_handoff). A slot that is open, that no connection holds and
// that this worker has not closed since the audit began holds the lost descriptor: it is served
// like any hand-off from the audit's listener. (A slot closed meanwhile was a hand-off that
// arrived while this worker was full; its close was queued after the probe ran.)
void Worker::on_audit_probe(uint32_t slot, int res) {
  if (audits_.empty()) return;
  Audit& audit = audits_.front();
  const uint32_t listener = audit.listener;
  const uint32_t stamp_us = audit.stamp_us;
  if (--audit.probes == 0) audits_.pop_front();
  const int s = static_cast<int>(slot);
  bool orphan = res >= 0;
  for (const Conn& conn : conns_) {
    if (!orphan) break;
    orphan = conn.client != s && conn.backend != s;
  }
  for (int closed : closed_during_audit_) orphan = orphan && closed != s;
  if (audits_.empty()) closed_during_audit_.clear();
  if (!orphan) return;
  stats_.lost_handoffs_recovered.add();
  on_handoff(s, listener, stamp_us);
}

void Worker::on_client_header(uint32_t id, int res, uint32_t flags) {
  Conn& conn = conns_[id];
  --conn.inflight;
  const int32_t buf = take_buffer(flags);
  if (conn.state == State::kClosing) {
    release_buffer(buf);
    partial_headers_.erase(id);
    return maybe_finish(id);
  }
  if (res == -ENOBUFS) return wait_for_buffer(id, kUp);
  if (res <= 0) {
    release_buffer(buf);
    partial_headers_.erase(id);
    // EOF before a whole header is as bad as a malformed one (HAProxy says the same).
    if (res == 0) return close_conn(id, CloseReason::k_bad_proxy_header);
    return close_conn(id, res == -ECONNRESET ? CloseReason::k_reset : CloseReason::k_error);
  }
  // last_active_ns is left at the hand-off: a header trickled in a byte at a time must still be
  // whole within the idle timeout, counted from the start.
  const char* chunk = reinterpret_cast<const char*>(buffers_.buffer(static_cast<uint16_t>(buf)));
  const size_t len = static_cast<size_t>(res);
  ParsedProxyHeader parsed;
  ParseResult result;
  size_t before = 0;  // header bytes from earlier pieces
  auto partial = partial_headers_.find(id);
  if (partial == partial_headers_.end()) {
    result = parse_proxy_header(chunk, len, &parsed);
  } else {
    before = partial->second.size();
    partial->second.append(chunk, len);
    result = parse_proxy_header(partial->second.data(), partial->second.size(), &parsed);
  }
  if (result != ParseResult::kComplete) {
    if (result == ParseResult::kIncomplete && partial == partial_headers_.end()) {
      partial_headers_[id].assign(chunk, len);
    }
    release_buffer(buf);
    if (result == ParseResult::kIncomplete) return arm_recv(id, kUp);
    partial_headers_.erase(id);
    return close_conn(id, CloseReason::k_bad_proxy_header);
  }
  if (partial != partial_headers_.end()) partial_headers_.erase(partial);
  conn.last_active_ns = now_ns_;
  // The header ends in this piece; what follows it is the client's first data. It waits in
  // the buffer until the backend is connected, then goes first (start_proxying).
  const size_t header_here = parsed.length - before;
  if (header_here < len) {
    Flow& up = conn.flow[kUp];
    up.buf = buf;
    up.off = static_cast<uint32_t>(header_here);
    up.len = static_cast<uint32_t>(len);
    conn.bytes[kUp] += len - header_here;
  } else {
    release_buffer(buf);
  }
  conn.state = State::kConnecting;
  if (!parsed.has_addresses) return identify_client(id);  // LOCAL or UNKNOWN: the socket's own
  memcpy(&peer_names_[id], &parsed.src, sizeof(sockaddr_in6));
  conn.has_peer_name = true;
  if (proxied_dsts_.empty()) proxied_dsts_.resize(conns_.size());
  memcpy(&proxied_dsts_[id], &parsed.dst, sizeof(sockaddr_in6));
  conn.has_proxied_dst = true;
  route(id);
}

void Worker::identify_client(uint32_t id) {
  Conn& conn = conns_[id];
  if (!conn.snap->needs_peer_name) return start_connect(id);
  // Maglev hashes the client's address, and a PROXY header and the access log carry it.
  // Multishot accept cannot report it per connection, so ask the socket: getsockopt
  // (SO_PEERNAME) through the socket uring_cmd. The length must be exactly the family's
  // sockaddr size.
  const int family = shared_.config.listen[conn.listener].address.family();
  io_uring_sqe* sqe = ring_.sqe();
  uring::prep_cmd_sock_direct(sqe, uring::kSocketOpGetsockopt, conn.client, SOL_SOCKET,
                              SO_PEERNAME, &peer_names_[id],
                              family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
  sqe->user_data = data(Tag::kPeerName, id);
  ++conn.inflight;
}

void Worker::on_peer_name(uint32_t id, int res) {
  Conn& conn = conns_[id];
  --conn.inflight;
  if (conn.state == State::kClosing) return maybe_finish(id);
  if (res < 0) return close_conn(id, res == -ENOTCONN ? CloseReason::k_reset : CloseReason::k_error);
  conn.has_peer_name = true;
  route(id);
}

void Worker::route(uint32_t id) {
  Conn& conn = conns_[id];
  if (conn.has_peer_name &&
      !conn.snap->acl->allows(reinterpret_cast<const sockaddr*>(&peer_names_[id]))) {
    return close_conn(id, CloseReason::k_denied);
  }
  if (conn.snap->snapshot->policy != balancer::Policy::kMaglev || !conn.has_peer_name) {
    return start_connect(id);
  }
  const sockaddr_in6& peer = peer_names_[id];
  const bool with_port = conn.snap->snapshot->hash_key == balancer::HashKey::kAddrPort;
  if (peer.sin6_family == AF_INET6) {
    conn.key_hash = balancer::hash64(&peer.sin6_addr, sizeof(peer.sin6_addr), with_port ? peer.sin6_port : 0);
  } else {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(peer);
    conn.key_hash = balancer::hash64(&v4.sin_addr, sizeof(v4.sin_addr), with_port ? v4.sin_port : 0);
  }
  start_connect(id);
}

Worker::SnapshotRef* Worker::current_snapshot() {
  const uint64_t version = shared_.snapshot.version();
  if (snapshots_.empty() || version != snapshot_version_) {
    // A reload published a new snapshot: new connections use it; old ones keep theirs.
    SnapshotRef ref;
    ref.snapshot = shared_.snapshot.get();
    ref.picker = std::make_unique<balancer::Picker>(*ref.snapshot, index_,
                                                    0x9E3779B97F4A7C15ULL * (index_ + 1) ^ now_ns_);
    snapshot_version_ = ref.snapshot->version;
    {
      std::lock_guard<std::mutex> lock(shared_.acl_mu);
      ref.acl = shared_.acl;
    }
    ref.needs_peer_name = ref.snapshot->policy == balancer::Policy::kMaglev ||
                          shared_.access_log != nullptr || !ref.acl->empty();
    for (const balancer::BackendSpec& b : ref.snapshot->backends) {
      if (b.proxy_protocol != 0) ref.needs_peer_name = true;
    }
    // Connections to a backend the new snapshot no longer has may finish, until the drain deadline.
    std::vector<bool> present(balancer::BackendRegistry::kCapacity, false);
    for (const balancer::BackendSpec& b : ref.snapshot->backends) present[b.id] = true;
    const uint64_t deadline = now_ns_ + to_ns(config_.drain_timeout);
    for (Conn& conn : conns_) {
      if (conn.state == State::kFree || conn.backend_index < 0 || present[conn.backend_id]) continue;
      if (conn.deadline_ns == 0) conn.deadline_ns = deadline;
    }
    snapshots_.push_back(std::move(ref));
    // Drop older snapshots nobody uses any more.
    for (auto it = snapshots_.begin(); std::next(it) != snapshots_.end();) {
      it = it->conns == 0 ? snapshots_.erase(it) : std::next(it);
    }
  }
  return &snapshots_.back();
}

void Worker::release_snapshot(SnapshotRef* ref) {
  if (--ref->conns == 0 && ref != &snapshots_.back()) {
    for (auto it = snapshots_.begin(); it != snapshots_.end(); ++it) {
      if (&*it == ref) {
        snapshots_.erase(it);
        break;
      }
    }
  }
}

void Worker::count_backend(Conn& conn, bool on) {
  if (conn.counted == on) return;
  conn.counted = on;
  auto& active = conn.snap->snapshot->backends[static_cast<size_t>(conn.backend_index)].state->active;
  active.fetch_add(on ? 1 : -1, std::memory_order_relaxed);
}

void Worker::start_connect(uint32_t id) {
  Conn& conn = conns_[id];
  const int b = conn.attempts < config_.connect_attempts ? conn.snap->picker->pick(conn.key_hash, conn.tried)
                                                         : -1;
  if (b < 0) {
    // Full backends not yet tried are worth waiting for (HAProxy's maxconn queue), also
    // after another backend refused.
    if (conn.attempts < config_.connect_attempts && config_.queue_timeout.count() > 0 &&
        !draining_ && conn.snap->picker->waiting_helps(conn.tried)) {
      return enqueue(id);
    }
    return close_conn(id, conn.attempts == 0 ? CloseReason::k_no_backend
                                             : CloseReason::k_connect_failed);
  }
  const balancer::BackendSpec& spec = conn.snap->snapshot->backends[static_cast<size_t>(b)];
  conn.backend_index = b;
  conn.backend_id = spec.id;
  if (b < 64) conn.tried |= 1ULL << b;
  ++conn.attempts;
  // Counted from the pick on, so that leastconn sees connections still being set up.
  count_backend(conn, true);
  stats_.backends[spec.id].connect_attempts.add();
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_socket_direct_alloc(sqe, shared_.backend_addresses[spec.id].family(), SOCK_STREAM,
                                    0, 0);
  sqe->user_data = data(Tag::kSocket, id);
  ++conn.inflight;
  conn.connect_start_ns = now_ns_;
}

void Worker::on_socket(uint32_t id, int res) {
  Conn& conn = conns_[id];
  --conn.inflight;
  if (res >= 0) {
    stats_.open_slots.add();
    conn.backend = res;
  }
  if (conn.state == State::kClosing) return maybe_finish(id);
  if (res < 0) return close_conn(id, CloseReason::k_error);
  const Address& addr = shared_.backend_addresses[conn.backend_id];
  io_uring_sqe* sqe;
  if (addr.family() != AF_UNIX) {
    static const int kOne = 1;
    // Proxied bytes must not wait for Nagle; the client side inherits it from the listener.
    // (A Unix socket has no Nagle, and would fail the option, and with it the linked connect.)
    sqe = ring_.sqe();
    uring::prep_cmd_sock_direct(sqe, uring::kSocketOpSetsockopt, conn.backend, IPPROTO_TCP,
                                TCP_NODELAY, const_cast<int*>(&kOne), sizeof(kOne));
    sqe->flags |= IOSQE_IO_LINK;
    quiet(sqe, Tag::kQuietSockopt);
  }
  sqe = ring_.sqe();
  io_uring_prep_connect(sqe, conn.backend, addr.get(), addr.length);
  sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_LINK;
  sqe->user_data = data(Tag::kConnect, id);
  ++conn.inflight;
  sqe = ring_.sqe();
  io_uring_prep_link_timeout(sqe, &connect_ts_, 0);
  // Not counted in flight: it ends no later than the connect it guards, and names no connection.
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  sqe->user_data = data(Tag::kQuietConnectTimeout, 0);
}

void Worker::on_connect(uint32_t id, int res) {
  Conn& conn = conns_[id];
  --conn.inflight;
  if (conn.state == State::kClosing) return maybe_finish(id);
  metrics::BackendStats& backend = stats_.backends[conn.backend_id];
  balancer::BackendState& state = *conn.snap->snapshot->backends[static_cast<size_t>(conn.backend_index)].state;
  if (res == 0) {
    conn.connected_ns = now_ns_;
    if (config_.metrics_enabled) backend.connect_latency.observe_ns(now_ns_ - conn.connect_start_ns);
    if (state.connect_failures_in_a_row.load(std::memory_order_relaxed) != 0) {
      state.connect_failures_in_a_row.store(0, std::memory_order_relaxed);
    }
    const auto proxy_protocol = static_cast<ProxyProtocol>(
        conn.snap->snapshot->backends[static_cast<size_t>(conn.backend_index)].proxy_protocol);
    if (proxy_protocol != ProxyProtocol::kNone) return send_proxy_header(id, proxy_protocol);
    return start_proxying(id);
  }
  // Refused, unreachable or timed out (-ECANCELED from the linked timeout): try another backend.
  backend.connect_failures.add();
  connect_failed(conn);
  close_slot(conn.backend);
  conn.backend = -1;
  start_connect(id);
}

void Worker::enqueue(uint32_t id) {
  Conn& conn = conns_[id];
  conn.state = State::kQueued;
  conn.queued_ns = now_ns_;
  conn.queue_ticket = next_ticket_++;
  // In accept order, not arrival order: hand-offs that reach this ring together are installed
  // last first (observed: of two clients accepted moments apart, the second arrived first).
  // The stamp is the acceptor's loop time, so clients accepted in one batch tie and keep their
  // arrival order. Wrap-safe comparison of the 32-bit microsecond stamps.
  auto at = queue_.end();
  while (at != queue_.begin() &&
         static_cast<int32_t>(conns_[std::prev(at)->conn].accept_us - conn.accept_us) > 0) {
    --at;
  }
  queue_.insert(at, {id, conn.queue_ticket});
  stats_.queued.set(++queued_);
  if (!queue_poll_armed_) arm_queue_poll();
}

void Worker::dispatch_queue() {
  while (!queue_.empty()) {
    const QueueEntry e = queue_.front();
    Conn& conn = conns_[e.conn];
    if (conn.state != State::kQueued || conn.queue_ticket != e.ticket) {
      queue_.pop_front();  // closed while it waited (or the slot now holds another client)
      continue;
    }
    // First come, first served: when the head cannot go yet, nobody behind it goes either.
    if (!conn.snap->picker->can_take(conn.tried)) return;
    queue_.pop_front();
    stats_.queued.set(--queued_);
    conn.state = State::kConnecting;
    conn.queue_wait_ns += now_ns_ - conn.queued_ns;
    conn.queue_ticket = 0;
    start_connect(e.conn);
  }
}

void Worker::arm_queue_poll() {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_timeout(sqe, &queue_poll_ts_, 0, 0);
  sqe->user_data = data(Tag::kQueuePoll, 0);
  queue_poll_armed_ = true;
}

void Worker::start_proxying(uint32_t id) {
  Conn& conn = conns_[id];
  conn.state = State::kProxying;
  conn.last_active_ns = now_ns_;
  // Clients usually speak first and may have already; the backend has nothing to say yet.
  conn.flow[kUp].expect_data = true;
  Flow& up = conn.flow[kUp];
  if (up.buf >= 0) {
    // Bytes that came in behind an accept-proxy header: they go first.
    stats_.backends[conn.backend_id].bytes_to_backend.add(up.len - up.off);
    submit_send(id, kUp);
  } else {
    arm_recv(id, kUp);
  }
  arm_recv(id, kDown);
}

void Worker::send_proxy_header(uint32_t id, ProxyProtocol version) {
  // Nothing is read from either side until the header is out, so it precedes every byte. The
  // destination is the listening address: for a wildcard listener that is 0.0.0.0 or ::, since
  // this kernel's socket uring_cmds cannot ask a direct descriptor for its local address.
  if (proxy_headers_.empty()) proxy_headers_.resize(conns_.size());
  ProxyHeader& header = proxy_headers_[id];
  const Conn& conn = conns_[id];
  // Behind another proxy (accept-proxy), the addresses its header named are passed on.
  const sockaddr* dst = conn.has_proxied_dst ? reinterpret_cast<const sockaddr*>(&proxied_dsts_[id])
                                             : shared_.listen_bound[conn.listener].get();
  header.len = static_cast<uint8_t>(write_proxy_header(
      version, reinterpret_cast<const sockaddr*>(&peer_names_[id]), dst, header.bytes));
  header.off = 0;
  submit_proxy_header(id);
}

void Worker::submit_proxy_header(uint32_t id) {
  Conn& conn = conns_[id];
  ProxyHeader& header = proxy_headers_[id];
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_send(sqe, conn.backend, header.bytes + header.off, header.len - header.off,
                     MSG_NOSIGNAL);
  sqe->flags |= IOSQE_FIXED_FILE;
  sqe->user_data = data(Tag::kSendProxyHeader, id);
  ++conn.inflight;
}

void Worker::on_proxy_header(uint32_t id, int res) {
  Conn& conn = conns_[id];
  ProxyHeader& header = proxy_headers_[id];
  --conn.inflight;
  if (conn.state == State::kClosing || res <= 0) {
    if (conn.state == State::kClosing) return maybe_finish(id);
    return close_conn(id, res == -ECONNRESET || res == -EPIPE ? CloseReason::k_reset
                                                              : CloseReason::k_error);
  }
  header.off = static_cast<uint8_t>(header.off + res);
  if (header.off < header.len) return submit_proxy_header(id);  // short write: the rest, in order
  start_proxying(id);
}

void Worker::connect_failed(Conn& conn) {
  count_backend(conn, false);
  // Passive health: enough failed connects in a row take the backend down until the active
  // checks bring it back (only where checks run, or nothing would bring it back).
  const balancer::BackendSpec& spec = conn.snap->snapshot->backends[static_cast<size_t>(conn.backend_index)];
  if (spec.check_interval_ms == 0) return;
  const uint32_t failures = spec.state->connect_failures_in_a_row.fetch_add(1, std::memory_order_relaxed) + 1;
  if (failures >= spec.fall && spec.state->up.exchange(0, std::memory_order_relaxed)) {
    fprintf(stderr, "ringlb: backend %s is down: %u connects failed in a row\n", spec.name.c_str(), failures);
  }
}

void Worker::arm_recv(uint32_t id, Dir dir) {
  Conn& conn = conns_[id];
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_recv(sqe, dir == kUp ? conn.client : conn.backend, nullptr, config_.buffer_size, 0);
  if (!conn.flow[dir].expect_data) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
  sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  const Tag tag = conn.state == State::kProxyHeader ? Tag::kRecvProxyHeader
                  : dir == kUp                      ? Tag::kRecvClient
                                                    : Tag::kRecvBackend;
  sqe->user_data = data(tag, id);
  ++conn.inflight;
}

void Worker::wait_for_buffer(uint32_t id, Dir dir) {
  // Every buffer of this worker is waiting to be sent somewhere: wait for one to come back.
  stats_.buffer_waits.add();
  conns_[id].flow[dir].waiting = true;
  waiters_.push_back({id, dir});
}

void Worker::submit_send(uint32_t id, Dir dir) {
  Conn& conn = conns_[id];
  Flow& flow = conn.flow[dir];
  io_uring_sqe* sqe = ring_.sqe();
  // WRITE_FIXED: the bytes sit in the registered region, so the kernel skips pinning them.
  io_uring_prep_write_fixed(sqe, dir == kUp ? conn.backend : conn.client,
                            buffers_.buffer(static_cast<uint16_t>(flow.buf)) + flow.off,
                            flow.len - flow.off, 0, static_cast<int>(index_));
  sqe->flags |= IOSQE_FIXED_FILE;
  sqe->user_data = data(dir == kUp ? Tag::kSendBackend : Tag::kSendClient, id);
  ++conn.inflight;
}

void Worker::on_recv(uint32_t id, Dir dir, int res, uint32_t flags) {
  Conn& conn = conns_[id];
  Flow& flow = conn.flow[dir];
  --conn.inflight;
  const int32_t buf = take_buffer(flags);
  if (conn.state == State::kClosing) {
    release_buffer(buf);
    return maybe_finish(id);
  }
  if (res > 0) {
    flow.expect_data = (flags & IORING_CQE_F_SOCK_NONEMPTY) != 0;
    flow.buf = buf;
    flow.len = static_cast<uint32_t>(res);
    flow.off = 0;
    conn.last_active_ns = now_ns_;
    conn.bytes[dir] += static_cast<uint64_t>(res);
    metrics::BackendStats& backend = stats_.backends[conn.backend_id];
    (dir == kUp ? backend.bytes_to_backend : backend.bytes_from_backend).add(static_cast<uint64_t>(res));
    return submit_send(id, dir);
  }
  release_buffer(buf);
  if (res == 0) {
    // Half-close: pass the FIN on and keep the other direction flowing.
    if (!conn.flow[kUp].eof && !conn.flow[kDown].eof) {
      conn.first_eof = dir == kUp ? CloseReason::k_client_eof : CloseReason::k_backend_eof;
    }
    flow.eof = true;
    conn.last_active_ns = now_ns_;  // the fin timeout counts from the FIN
    if (conn.flow[kUp].eof && conn.flow[kDown].eof) {
      // Both sides are done: the close that follows sends this FIN, no shutdown needed.
      return maybe_close_after_eof(id);
    }
    // The kernel always runs SHUTDOWN from io-wq and looks the slot up only then, so it must
    // complete before the slot may be closed (and reused): it is waited for like any other op.
    // It is queued last in this batch (see loop()); counting it now keeps the slot open.
    shutdowns_.push_back({id, dir});
    ++conn.inflight;
    return;
  }
  if (res == -ENOBUFS) return wait_for_buffer(id, dir);
  close_conn(id, res == -ECONNRESET || res == -EPIPE ? CloseReason::k_reset : CloseReason::k_error);
}

void Worker::on_send(uint32_t id, Dir dir, int res) {
  Conn& conn = conns_[id];
  Flow& flow = conn.flow[dir];
  --conn.inflight;
  if (conn.state == State::kClosing || res <= 0) {
    release_buffer(flow.buf);
    flow.buf = -1;
    if (conn.state == State::kClosing) return maybe_finish(id);
    return close_conn(id, res == -ECONNRESET || res == -EPIPE ? CloseReason::k_reset
                                                              : CloseReason::k_error);
  }
  conn.last_active_ns = now_ns_;
  flow.off += static_cast<uint32_t>(res);
  if (flow.off < flow.len) return submit_send(id, dir);  // short write: send the rest, in order
  release_buffer(flow.buf);
  flow.buf = -1;
  if (waiters_head_ < waiters_.size()) {
    // Others are waiting for a buffer: queue behind them rather than overtake.
    flow.waiting = true;
    waiters_.push_back({id, dir});
    return;
  }
  arm_recv(id, dir);
}

void Worker::maybe_close_after_eof(uint32_t id) {
  Conn& conn = conns_[id];
  if (conn.flow[kUp].eof && conn.flow[kDown].eof && conn.inflight == 0) {
    close_conn(id, conn.first_eof);
  }
}

int32_t Worker::take_buffer(uint32_t cqe_flags) {
  if (!(cqe_flags & IORING_CQE_F_BUFFER)) return -1;
  stats_.buffers_in_use.add();
  return static_cast<int32_t>(cqe_flags >> IORING_CQE_BUFFER_SHIFT);
}

void Worker::release_buffer(int32_t buf) {
  if (buf < 0) return;
  buffers_.recycle(static_cast<uint16_t>(buf));
  stats_.buffers_in_use.sub();
  wake_waiters(1);
}

void Worker::wake_waiters(size_t n) {
  while (n > 0 && waiters_head_ < waiters_.size()) {
    const FlowRef w = waiters_[waiters_head_++];
    Conn& conn = conns_[w.conn];
    if (!conn.flow[w.dir].waiting) continue;
    conn.flow[w.dir].waiting = false;
    // A client still sending its PROXY header waits like a proxied one; arm_recv knows which.
    if (conn.state != State::kProxying && conn.state != State::kProxyHeader) continue;
    arm_recv(w.conn, w.dir);
    --n;
  }
  if (waiters_head_ == waiters_.size()) {
    waiters_.clear();
    waiters_head_ = 0;
  }
}

void Worker::close_conn(uint32_t id, CloseReason reason) {
  Conn& conn = conns_[id];
  if (conn.state == State::kClosing || conn.state == State::kFree) return;
  if (conn.state == State::kQueued) {
    stats_.queued.set(--queued_);
    conn.queue_wait_ns += now_ns_ - conn.queued_ns;
    if (queued_ == 0) queue_.clear();  // only entries of clients gone are left
  }
  conn.state = State::kClosing;
  stats_.close(reason).add();
  if (shared_.access_log != nullptr) log_access(id, reason);
  conn.flow[kUp].waiting = conn.flow[kDown].waiting = false;
  if (conn.inflight > 0) {
    // Outstanding recvs would otherwise wait for data forever; cancel everything on both slots.
    for (int slot : {conn.client, conn.backend}) {
      if (slot < 0) continue;
      io_uring_sqe* sqe = ring_.sqe();
      io_uring_prep_cancel_fd(sqe, slot, IORING_ASYNC_CANCEL_FD_FIXED | IORING_ASYNC_CANCEL_ALL);
      sqe->user_data = data(Tag::kCancel, id);
      ++conn.inflight;
    }
  }
  maybe_finish(id);
}

void Worker::log_access(uint32_t id, CloseReason reason) {
  const Conn& conn = conns_[id];
  timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  const int64_t now_unix_us = static_cast<int64_t>(wall.tv_sec) * 1'000'000 + wall.tv_nsec / 1000;
  AccessRecord r;
  r.start_unix_us = now_unix_us - static_cast<int64_t>((now_ns_ - conn.start_ns) / 1000);
  r.client = conn.has_peer_name ? reinterpret_cast<const sockaddr*>(&peer_names_[id]) : nullptr;
  r.listener = shared_.listen_bound[conn.listener].get();
  if (conn.backend_index >= 0) {
    r.backend = &conn.snap->snapshot->backends[static_cast<size_t>(conn.backend_index)].name;
  }
  r.worker = index_;
  r.queue_us = static_cast<int64_t>(conn.queue_wait_ns / 1000);
  r.connect_attempts = conn.attempts;
  if (conn.connected_ns != 0) r.connect_us = static_cast<int64_t>((conn.connected_ns - conn.connect_start_ns) / 1000);
  r.duration_us = static_cast<int64_t>((now_ns_ - conn.start_ns) / 1000);
  r.bytes_from_client = conn.bytes[kUp];
  r.bytes_from_backend = conn.bytes[kDown];
  r.close_reason = metrics::close_reason_name(reason);
  append_access_line(r, &access_batch_);
  ++access_lines_;
  // Handed over at each tick, or sooner when a burst of closes makes the batch large.
  if (access_batch_.size() >= 64 * 1024) flush_access_log();
}

void Worker::flush_access_log() {
  if (access_lines_ == 0) return;
  shared_.access_log->submit(&access_batch_, access_lines_);
  access_lines_ = 0;
}

void Worker::maybe_finish(uint32_t id) {
  Conn& conn = conns_[id];
  if (conn.state != State::kClosing || conn.inflight > 0) return;
  // Nothing is in flight on either socket now; the closes run in submission order, after any
  // shutdown queued before them, and nothing waits for their completions.
  if (conn.client >= 0) close_slot(conn.client);
  if (conn.backend >= 0) close_slot(conn.backend);
  conn.client = conn.backend = -1;
  free_conn(id);
}

void Worker::free_conn(uint32_t id) {
  Conn& conn = conns_[id];
  for (Flow& flow : conn.flow) {
    // Only bytes read behind a PROXY header can still be held here: every other buffer goes
    // back when its send completes.
    release_buffer(flow.buf);
    flow.buf = -1;
  }
  // A header still in pieces (its client closed while waiting for a buffer): the next client
  // in this slot must not inherit it.
  if (!partial_headers_.empty()) partial_headers_.erase(id);
  if (conn.backend_index >= 0) count_backend(conn, false);
  release_snapshot(conn.snap);
  conn.snap = nullptr;
  conn.state = State::kFree;
  free_.push_back(id);
  --live_;
  stats_.active.set(live_);
  slot_.active.store(live_, std::memory_order_relaxed);
}

void Worker::quiet(io_uring_sqe* sqe, Tag tag) {
  const bool sample = config_.metrics_enabled && ++sample_ % kSampleEvery == 0;
  if (!sample) sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  sqe->user_data = data(tag, 0);
}

void Worker::close_slot(int slot) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_close_direct(sqe, static_cast<unsigned>(slot));
  quiet(sqe, Tag::kQuietClose);
  stats_.open_slots.sub();
  if (!audits_.empty()) closed_during_audit_.push_back(slot);  // see on_audit_probe
}

void Worker::arm_tick() {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_timeout(sqe, &tick_ts_, 0, 0);
  sqe->user_data = data(Tag::kTick, 0);
}

void Worker::on_tick() {
  const uint64_t idle_ns = to_ns(config_.idle_timeout);
  const uint64_t fin_ns = to_ns(config_.fin_timeout);
  const uint64_t max_ns = to_ns(config_.max_connection_duration);
  const uint64_t queue_ns = to_ns(config_.queue_timeout);
  const bool drain_over = draining_ && now_ns_ >= drain_deadline_ns_;
  if (shared_.snapshot.version() != snapshot_version_) current_snapshot();  // a reload happened
  for (uint32_t id = 0; id < conns_.size(); ++id) {
    Conn& conn = conns_[id];
    if (conn.state == State::kFree || conn.state == State::kClosing) continue;
    if (drain_over || (conn.deadline_ns != 0 && now_ns_ >= conn.deadline_ns)) {
      close_conn(id, CloseReason::k_drain);
    } else if (max_ns != 0 && now_ns_ - conn.start_ns >= max_ns) {
      close_conn(id, CloseReason::k_max_duration);
    } else if (conn.state == State::kQueued) {
      if (now_ns_ - conn.queued_ns >= queue_ns) close_conn(id, CloseReason::k_queue_timeout);
    } else if (conn.state == State::kProxying || conn.state == State::kProxyHeader) {
      // A client that never finishes its PROXY header is idle like any other.
      const bool half_closed = conn.flow[kUp].eof || conn.flow[kDown].eof;
      const bool fin_first = half_closed && fin_ns < idle_ns;
      if (now_ns_ - conn.last_active_ns >= (fin_first ? fin_ns : idle_ns)) {
        close_conn(id, fin_first ? CloseReason::k_fin_timeout : CloseReason::k_idle_timeout);
      }
    }
  }
  // A safety net for buffer waiters: retry a few even if no buffer came back through a send.
  wake_waiters(8);
  flush_access_log();
  if (!(draining_ && live_ == 0)) arm_tick();
}

}  // namespace ringlb
