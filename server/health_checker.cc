#include "server/health_checker.h"

#include <pthread.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "server/clock.h"
#include "server/uring/compat.h"

namespace ringlb {
namespace {

constexpr uint64_t kTickNs = 50'000'000;

// A check's history (rise/fall counts), dropped when its backend leaves the snapshots.
template <typename Check>
void forget(Check& c) {
  c.successes = 0;
  c.failures = 0;
  c.last_seen_up = true;
  c.next_due_ns = 0;
}

}  // namespace

HealthChecker::HealthChecker(SharedState& shared) : shared_(shared) {}

int HealthChecker::setup() {
  uring::RingOptions options;
  options.entries = 256;
  options.cq_entries = 4096;
  if (int ret = ring_.init(options); ret < 0) {
    fprintf(stderr, "ringlb: health checker: io_uring_setup: %s; checks disabled\n", strerror(-ret));
    return ret;
  }
  if (int ret = table_.init(ring_, balancer::BackendRegistry::kCapacity); ret < 0) {
    fprintf(stderr, "ringlb: health checker: descriptor table: %s; checks disabled\n", strerror(-ret));
    return ret;
  }
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
      // (at most 3 per backend plus the tick). If it does, a check whose completion was lost
      // stays in flight (that backend keeps its last state) and in_flight_ never reaches 0, so
      // stopping no longer waits for it: closing the ring cancels whatever is left.
      // Logged once: the kernel may keep reporting -EBADR on later waits.
      if (!completions_lost_) {
        fprintf(stderr, "ringlb: health checker: the kernel dropped %u completions\n",
                ring_.cq_dropped());
      }
      completions_lost_ = true;
    } else if (ret < 0) {
      fprintf(stderr, "ringlb: health checker: io_uring_submit_and_wait: %s\n", strerror(-ret));
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
            finish(id, false);
            break;
          }
          c.slot = cqe->res;
          if (stopping_.load()) {
            finish(id, false);
            break;
          }
          {
            const Address& addr = shared_.backend_addresses[id];
            // One batch for the pair: split across two submissions, the connect would run with
            // no timeout (and the lone link_timeout would fail with -EINVAL).
            ring_.reserve(2);
            io_uring_sqe* sqe = ring_.sqe();
            io_uring_prep_connect(sqe, c.slot, addr.get(), addr.length);
            sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_LINK;
            sqe->user_data = data(Tag::kCheckConnect, id);
            sqe = ring_.sqe();
            io_uring_prep_link_timeout(sqe, &c.timeout, 0);
            sqe->user_data = data(Tag::kCheckTimeout, id);
            ++in_flight_;  // the timeout's completion
          }
          break;
        case Tag::kCheckConnect:
          shared_.registry->health_check_latency.observe_ns(elapsed_ns_since(time_of(ud), now_ns_));
          on_connect(id, cqe->res);
          break;
        case Tag::kCheckProxyHeader:
          // A short write of a few bytes to a fresh connection means it is already failing.
          finish(id, cqe->res == c.proxy_header_len);
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
      c.next_due_ns = now_ns_ + uint64_t{b.check_interval_ms} * 1'000'000ULL;
      start(b.id, snapshot);
    }
  }
}

void HealthChecker::start(uint32_t id, const std::shared_ptr<const balancer::Snapshot>& snapshot) {
  Check& c = checks_[id];
  c.in_flight = true;
  c.pinned = snapshot;
  c.started_ns = now_ns_;
  c.timeout.tv_sec = c.spec->check_timeout_ms / 1000;
  c.timeout.tv_nsec = static_cast<long long>(c.spec->check_timeout_ms % 1000) * 1'000'000;
  ++in_flight_;
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_socket_direct_alloc(sqe, shared_.backend_addresses[id].family(), SOCK_STREAM, 0, 0);
  sqe->user_data = data(Tag::kCheckSocket, id);
}

void HealthChecker::on_connect(uint32_t id, int res) {
  Check& c = checks_[id];
  const auto version = c.spec != nullptr ? static_cast<ProxyProtocol>(c.spec->proxy_protocol)
                                         : ProxyProtocol::kNone;
  if (res != 0 || version == ProxyProtocol::kNone || stopping_.load()) return finish(id, res == 0);
  c.proxy_header_len = static_cast<uint8_t>(write_proxy_header_local(version, c.proxy_header));
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_send(sqe, c.slot, c.proxy_header, c.proxy_header_len, MSG_NOSIGNAL);
  sqe->flags |= IOSQE_FIXED_FILE;
  sqe->user_data = data(Tag::kCheckProxyHeader, id);
}

void HealthChecker::finish(uint32_t id, bool ok) {
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
  shared_.registry->health_checks.add();
  if (!ok) shared_.registry->health_check_failures.add();
  // The id stays held until this returns (the state below is the id's).
  const std::shared_ptr<const balancer::Snapshot> pinned = std::move(c.pinned);
  if (c.spec == nullptr || stopping_.load()) {  // removed by a reload meanwhile
    forget(c);
    return;
  }
  balancer::BackendState& state = shared_.backends.state(id);
  // "CLUSTER/ADDRESS": an address may be in several clusters, each checked on its own.
  const std::string who =
      shared_.backends.cluster_name(shared_.backends.cluster_of(id)) + "/" + shared_.backends.name(id);
  const char* name = who.c_str();
  // Taken down elsewhere since the last check (passive: failed connects): rise counts afresh.
  if (c.last_seen_up && !state.up.load(std::memory_order_relaxed)) c.successes = 0;
  if (ok) {
    c.failures = 0;
    ++c.successes;
    state.connect_failures_in_a_row.store(0, std::memory_order_relaxed);
    if (c.successes >= c.spec->rise && !state.up.load(std::memory_order_relaxed)) {
      state.up.store(1, std::memory_order_relaxed);
      fprintf(stderr, "ringlb: backend %s is up: %u checks passed in a row\n", name, c.successes);
    }
  } else {
    c.successes = 0;
    ++c.failures;
    if (c.failures >= c.spec->fall && state.up.load(std::memory_order_relaxed)) {
      state.up.store(0, std::memory_order_relaxed);
      fprintf(stderr, "ringlb: backend %s is down: %u checks failed in a row\n", name, c.failures);
    }
  }
  c.last_seen_up = state.up.load(std::memory_order_relaxed);
}

}  // namespace ringlb
