#include "server/health/checker.h"

#include <pthread.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "server/base/clock.h"
#include "server/health/schedule.h"
#include "server/base/log.h"
#include "server/uring/compat.h"

namespace ringlb {
namespace {

constexpr uint64_t kTickNs = 50'000'000;
// Each operation's linked timeout gets at least this, so a check at its deadline still fails
// through the kernel's timeout (one path for every timeout) rather than a special case here.
constexpr uint64_t kMinTimeoutNs = 1'000'000;

// A check's history (rise/fall counts), dropped when its backend leaves the snapshots.
template <typename Check>
void forget(Check& c) {
  c.successes = 0;
  c.failures = 0;
  c.last_seen_up = true;
  c.next_due_ns = 0;
  if (c.probe) c.probe->forget_backend();  // its TLS session was another backend's
}

const health::CheckSpec kTcpCheck;

}  // namespace

HealthChecker::HealthChecker(SharedState& shared) : shared_(shared) {}

int HealthChecker::setup() {
  uring::RingOptions options;
  options.entries = 256;
  options.cq_entries = 4096;
  if (int ret = ring_.init(options); ret < 0) {
    log(LogLevel::kError, "health checker: io_uring_setup: %s; checks disabled", strerror(-ret));
    return ret;
  }
  if (int ret = table_.init(ring_, balancer::BackendRegistry::kCapacity); ret < 0) {
    log(LogLevel::kError, "health checker: descriptor table: %s; checks disabled", strerror(-ret));
    return ret;
  }
  // Made even when no check uses TLS yet: a reload may add one. Without it, tls checks fail.
  tls_ = std::make_unique<health::TlsContext>();
  if (tls_->get() == nullptr) log(LogLevel::kWarning, "health checker: no OpenSSL context; tls checks fail");
  return 0;
}

void HealthChecker::run(std::promise<void>* ready) {
  pthread_setname_np(pthread_self(), "ringlb-health");
  const int ret = setup();
  ready->set_value();
  if (ret < 0) return;
  tick_ts_.tv_nsec = static_cast<long long>(kTickNs);
  now_ns_ = monotonic_ns();
  now_us_ = micros32(now_ns_);
  tick();
  while (!(stopping_.load() && (in_flight_ == 0 || completions_lost_))) {
    if (int ret = ring_.submit_and_wait_one(); ret == -EBADR) {
      // Cannot happen while the CQ (4096) holds every completion that can be in flight at once
      // (at most 2 per backend plus the tick). If it does, a check whose completion was lost
      // stays in flight (that backend keeps its last state) and in_flight_ never reaches 0, so
      // stopping no longer waits for it: closing the ring cancels whatever is left.
      // Logged once: the kernel may keep reporting -EBADR on later waits.
      if (!completions_lost_) {
        log(LogLevel::kError, "health checker: the kernel dropped %u completions", ring_.cq_dropped());
      }
      completions_lost_ = true;
    } else if (ret < 0) {
      log(LogLevel::kError, "health checker: io_uring_submit_and_wait: %s", strerror(-ret));
    }
    now_ns_ = monotonic_ns();
    now_us_ = micros32(now_ns_);
    ring_.reap([&](const io_uring_cqe* cqe) {
      const uint64_t ud = cqe->user_data;
      const uint32_t id = index_of(ud);
      Check& c = checks_[id];
      switch (tag_of(ud)) {
        case Tag::kCheckTick:
          tick();
          break;
        case Tag::kCheckSocket:
          if (cqe->res < 0) {
            finish(id, health::Result::k_refused, std::string("socket: ") + strerror(-cqe->res));
            break;
          }
          c.slot = cqe->res;
          if (stopping_.load()) {
            finish(id, health::Result::k_refused, "stopping");
            break;
          }
          {
            // One batch for the pair: split across two submissions, the connect would run with
            // no timeout (and the lone link_timeout would fail with -EINVAL).
            ring_.reserve(2);
            io_uring_sqe* sqe = ring_.sqe();
            io_uring_prep_connect(sqe, c.slot, c.target.get(), c.target.length);
            sqe->flags |= IOSQE_FIXED_FILE;
            sqe->user_data = data(Tag::kCheckConnect, id);
            link_deadline(id, sqe);
          }
          break;
        case Tag::kCheckConnect:
          shared_.registry->health_check_latency.observe_ns(elapsed_ns_since(time_of(ud), now_ns_));
          on_connect(id, cqe->res);
          break;
        case Tag::kCheckSend:
          c.probe->on_sent(cqe->res);
          advance(id);
          break;
        case Tag::kCheckRecv:
          c.probe->on_received(cqe->res);
          advance(id);
          break;
        case Tag::kCheckTimeout:
          --in_flight_;
          break;
        default:
          break;
      }
    });
  }
}

void HealthChecker::tick() {
  if (!stopping_.load()) {
    io_uring_sqe* sqe = ring_.sqe();
    io_uring_prep_timeout(sqe, &tick_ts_, 0, 0);
    sqe->user_data = data(Tag::kCheckTick, 0);
  }
  // A reload republished some cluster: the specs to check by are taken afresh, all at once
  // (a removed backend's spec goes with its cluster's old snapshot).
  const uint32_t clusters = shared_.backends.clusters();
  bool moved = snapshots_.size() != clusters;
  snapshots_.resize(clusters);
  for (uint32_t i = 0; i < clusters; ++i) {
    const uint64_t version = shared_.clusters[i].version();
    if (version != (snapshots_[i] ? snapshots_[i]->version : 0)) {
      snapshots_[i] = shared_.clusters[i].get();
      moved = true;
    }
  }
  if (moved) {
    for (Check& c : checks_) c.spec = nullptr;
    for (const auto& snapshot : snapshots_) {
      if (!snapshot) continue;
      for (const balancer::BackendSpec& b : snapshot->backends) checks_[b.id].spec = &b;
    }
    // A removed backend's id may be recycled: its next owner starts with no history.
    for (Check& c : checks_) {
      if (c.spec == nullptr && !c.in_flight) forget(c);
    }
  }
  if (stopping_.load()) return;
  for (const auto& snapshot : snapshots_) {
    if (!snapshot) continue;
    for (const balancer::BackendSpec& b : snapshot->backends) {
      Check& c = checks_[b.id];
      if (b.check_interval_ms == 0 || c.in_flight || now_ns_ < c.next_due_ns) continue;
      // 0: the backend's first check (it runs at once), after which it takes its phase.
      const uint64_t interval_ns = uint64_t{b.check_interval_ms} * 1'000'000ULL;
      c.next_due_ns = c.next_due_ns == 0 ? now_ns_ + health::phase_delay_ns(b.id, interval_ns)
                                         : health::next_due_ns(c.next_due_ns, now_ns_, interval_ns);
      start(b.id, snapshot);
    }
  }
}

void HealthChecker::start(uint32_t id, const std::shared_ptr<const balancer::Snapshot>& snapshot) {
  Check& c = checks_[id];
  c.in_flight = true;
  c.running = c.spec;
  c.pinned = snapshot;
  c.started_ns = now_ns_;
  c.deadline_ns = now_ns_ + uint64_t{c.running->check_timeout_ms} * 1'000'000ULL;
  c.target = shared_.backend_addresses[id];
  if (c.running->check && c.running->check->port != 0) c.target.set_port(c.running->check->port);
  ++in_flight_;
  io_uring_sqe* sqe = ring_.sqe();
  // A udp check's socket is connected too: its "connect" only sets the peer (nothing is sent),
  // and the kernel then reports the backend's ICMP port unreachable to it as ECONNREFUSED.
  const bool udp = c.running->check && health::uses_datagrams(c.running->check->type);
  io_uring_prep_socket_direct_alloc(sqe, c.target.family(), udp ? SOCK_DGRAM : SOCK_STREAM, 0, 0);
  sqe->user_data = data(Tag::kCheckSocket, id);
}

void HealthChecker::link_deadline(uint32_t id, io_uring_sqe* sqe, uint64_t cap_ns) {
  Check& c = checks_[id];
  sqe->flags |= IOSQE_IO_LINK;
  uint64_t left = c.deadline_ns > now_ns_ + kMinTimeoutNs ? c.deadline_ns - now_ns_ : kMinTimeoutNs;
  if (cap_ns != 0 && cap_ns < left) left = cap_ns;
  c.timeout.tv_sec = static_cast<long long>(left / 1'000'000'000ULL);
  c.timeout.tv_nsec = static_cast<long long>(left % 1'000'000'000ULL);
  io_uring_sqe* timeout = ring_.sqe();
  io_uring_prep_link_timeout(timeout, &c.timeout, 0);
  timeout->user_data = data(Tag::kCheckTimeout, id);
  ++in_flight_;  // the timeout's completion
}

void HealthChecker::on_connect(uint32_t id, int res) {
  Check& c = checks_[id];
  if (res == -ECANCELED) return finish(id, health::Result::k_timeout, "no connect");
  if (res < 0) return finish(id, health::Result::k_refused, std::string("connect: ") + strerror(-res));
  if (stopping_.load()) return finish(id, health::Result::k_ok, {});
  // A send-proxy backend expects a PROXY header on every connection, checks included (as
  // HAProxy sends one by default): the LOCAL form, naming no client, before anything else.
  std::string preamble;
  const balancer::BackendSpec& spec = *c.running;
  const auto version = static_cast<ProxyProtocol>(spec.proxy_protocol);
  const bool udp = spec.check && health::uses_datagrams(spec.check->type);
  if (version != ProxyProtocol::kNone && !udp) {
    char header[kMaxProxyHeader];
    preamble.assign(header, static_cast<size_t>(write_proxy_header_local(version, header)));
  }
  if (!c.probe) c.probe = std::make_unique<health::Probe>();
  c.probe->start(spec.check ? spec.check.get() : &kTcpCheck, std::move(preamble), spec.name, tls_.get());
  advance(id);
}

void HealthChecker::advance(uint32_t id) {
  Check& c = checks_[id];
  health::Probe& probe = *c.probe;
  const health::Probe::Step step = probe.next();
  if (step.kind == health::Probe::Step::kDone) return finish(id, probe.result(), probe.reason());
  ring_.reserve(2);
  io_uring_sqe* sqe = ring_.sqe();
  if (step.kind == health::Probe::Step::kSend) {
    io_uring_prep_send(sqe, c.slot, step.data, step.len, MSG_NOSIGNAL);
    sqe->user_data = data(Tag::kCheckSend, id);
  } else {
    io_uring_prep_recv(sqe, c.slot, step.buf, step.len, 0);
    sqe->user_data = data(Tag::kCheckRecv, id);
  }
  sqe->flags |= IOSQE_FIXED_FILE;
  link_deadline(id, sqe, step.optional ? uint64_t{health::Probe::kOptionalWaitMs} * 1'000'000ULL : 0);
}

void HealthChecker::finish(uint32_t id, health::Result result, const std::string& why) {
  Check& c = checks_[id];
  --in_flight_;
  c.in_flight = false;
  if (c.slot >= 0) {
    io_uring_sqe* sqe = ring_.sqe();
    io_uring_prep_close_direct(sqe, static_cast<unsigned>(c.slot));
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    sqe->user_data = data(Tag::kQuietClose, id);
    c.slot = -1;
  }
  const bool ok = result == health::Result::k_ok;
  std::string reason = why;
  if (result == health::Result::k_timeout) reason += " within " + std::to_string(c.running->check_timeout_ms) + "ms";
  c.running = nullptr;
  // The id stays held until this returns (the stats and state below are the id's).
  const std::shared_ptr<const balancer::Snapshot> pinned = std::move(c.pinned);
  if (stopping_.load()) {
    forget(c);
    return;
  }
  metrics::HealthCheckStats& stats = shared_.registry->checks[id];
  stats.duration.observe_ns(now_ns_ - c.started_ns);
  stats.record(result, unix_ms());
  shared_.registry->health_checks.add();
  if (!ok) {
    shared_.registry->health_check_failures.add();
    std::lock_guard<std::mutex> lock(shared_.check_failures_mu);
    shared_.last_check_failure[id] = std::string(health::result_name(result)) + ": " + reason;
  }
  if (c.spec == nullptr) {  // removed by a reload meanwhile
    forget(c);
    return;
  }
  balancer::BackendState& state = shared_.backends.state(id);
  // "CLUSTER/ADDRESS": an address may be in several clusters, each checked on its own.
  const std::string who =
      shared_.backends.cluster_name(shared_.backends.cluster_of(id)) + "/" + shared_.backends.name(id);
  // Taken down elsewhere since the last check (passive: failed connects): rise counts afresh.
  if (c.last_seen_up && !state.up.load(std::memory_order_relaxed)) c.successes = 0;
  if (ok) {
    c.failures = 0;
    ++c.successes;
    state.connect_failures_in_a_row.store(0, std::memory_order_relaxed);
    if (c.successes >= c.spec->rise && !state.up.load(std::memory_order_relaxed)) {
      // The ramp starts before workers can see it up, so none gives it its full share first.
      if (c.spec->slow_start_ms != 0) state.ramp_from_ns.store(now_ns_, std::memory_order_relaxed);
      state.up.store(1, std::memory_order_relaxed);
      log(LogLevel::kInfo, "backend %s up: %u checks passed in a row%s", who.c_str(), c.successes,
          c.spec->slow_start_ms != 0 ? (", slow start over " + std::to_string(c.spec->slow_start_ms) + "ms").c_str() : "");
    }
  } else {
    c.successes = 0;
    ++c.failures;
    if (c.failures >= c.spec->fall && state.up.load(std::memory_order_relaxed)) {
      state.up.store(0, std::memory_order_relaxed);
      log(LogLevel::kWarning, "backend %s down: %s (%u checks failed in a row)", who.c_str(), reason.c_str(),
          c.failures);
    }
  }
  c.last_seen_up = state.up.load(std::memory_order_relaxed);
}

}  // namespace ringlb
