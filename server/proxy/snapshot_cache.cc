#include "server/proxy/snapshot_cache.h"

#include <vector>

#include "server/proxy/lifecycle.h"
#include "server/worker/context.h"

namespace ringlb::proxy {
namespace {

__kernel_timespec to_timespec(uint64_t ns) {
  __kernel_timespec ts{};
  ts.tv_sec = static_cast<long long>(ns / 1'000'000'000ULL);
  ts.tv_nsec = static_cast<long long>(ns % 1'000'000'000ULL);
  return ts;
}

}  // namespace

SnapshotCache::SnapshotCache(worker::Context& ctx)
    : ctx_(ctx), clusters_(balancer::BackendRegistry::kMaxClusters) {
  // Published before any worker starts.
  std::lock_guard<std::mutex> lock(ctx_.shared.policies_mu);
  policies_ = ctx_.shared.policies;
  policies_version_ = policies_->version;
}

SnapshotRef* SnapshotCache::acquire(uint16_t cluster) {
  SnapshotRef* ref = current(cluster);
  ++ref->conns;
  return ref;
}

void SnapshotCache::refresh_policies() {
  if (ctx_.shared.policies_version.load(std::memory_order_acquire) == policies_version_) return;
  {
    std::lock_guard<std::mutex> lock(ctx_.shared.policies_mu);
    policies_ = ctx_.shared.policies;
  }
  policies_version_ = policies_->version;
  ctx_.lifecycle->set_policies(*policies_);
  // A reload removed a listener: its connections may finish until the drain deadline. Rare, so
  // one pass over the slots is fine here.
  bool any_removed = false;
  for (const ListenerPolicy& p : policies_->listeners) any_removed = any_removed || p.removed;
  if (!any_removed) return;
  const uint64_t deadline = ctx_.now_ns + to_ns(ctx_.config.drain_timeout);
  for (uint32_t id = 0; id < ctx_.conns.size(); ++id) {
    Conn& conn = ctx_.conns[id];
    if (conn.state == State::kFree || conn.deadline_ns != 0 || !policies_->listeners[conn.listener].removed) {
      continue;
    }
    conn.deadline_ns = deadline;
    ctx_.lifecycle->rearm_timer(id);
  }
}

void SnapshotCache::refresh() {
  refresh_policies();
  const uint32_t n = ctx_.shared.backends.clusters();
  for (uint32_t c = 0; c < n; ++c) {
    const uint64_t version = ctx_.shared.clusters[c].version();
    if (version != 0 && version != clusters_[c].version) current(static_cast<uint16_t>(c));
  }
}

SnapshotRef* SnapshotCache::current(uint16_t cluster) {
  Cluster& cached = clusters_[cluster];
  const balancer::SnapshotHolder& holder = ctx_.shared.clusters[cluster];
  const uint64_t version = holder.version();
  if (!cached.refs.empty() && version == cached.version) return &cached.refs.back();
  SnapshotRef ref;
  ref.snapshot = holder.get();
  ref.cluster = cluster;
  ref.picker = std::make_unique<balancer::Picker>(*ref.snapshot, ctx_.index,
                                                  0x9E3779B97F4A7C15ULL * (ctx_.index + 1) ^ ctx_.now_ns);
  cached.version = ref.snapshot->version;
  ref.connect_ts = to_timespec(uint64_t{ref.snapshot->connect_timeout_ms} * 1'000'000ULL);
  ref.queue_ns = uint64_t{ref.snapshot->queue_timeout_ms} * 1'000'000ULL;
  ref.needs_peer_name = ref.snapshot->policy == balancer::Policy::kMaglev;
  for (const balancer::BackendSpec& b : ref.snapshot->backends) {
    if (b.proxy_protocol != 0) ref.needs_peer_name = true;
  }
  // Connections of this cluster to a backend the new snapshot no longer has may finish, until
  // the drain deadline. A reload is rare, so one pass over the slots is fine here.
  std::vector<bool> present(balancer::BackendRegistry::kCapacity, false);
  for (const balancer::BackendSpec& b : ref.snapshot->backends) present[b.id] = true;
  const uint64_t deadline = ctx_.now_ns + to_ns(ctx_.config.drain_timeout);
  for (uint32_t id = 0; id < ctx_.conns.size(); ++id) {
    Conn& conn = ctx_.conns[id];
    if (conn.state == State::kFree || conn.snap == nullptr || conn.cluster != cluster ||
        conn.backend_index < 0 || present[conn.backend_id]) {
      continue;
    }
    if (conn.deadline_ns == 0) {
      conn.deadline_ns = deadline;
      ctx_.lifecycle->rearm_timer(id);
    }
  }
  cached.refs.push_back(std::move(ref));
  // Drop older snapshots nobody uses any more.
  for (auto it = cached.refs.begin(); std::next(it) != cached.refs.end();) {
    it = it->conns == 0 ? cached.refs.erase(it) : std::next(it);
  }
  return &cached.refs.back();
}

void SnapshotCache::release(SnapshotRef* ref) {
  if (ref == nullptr) return;
  std::list<SnapshotRef>& refs = clusters_[ref->cluster].refs;
  if (--ref->conns == 0 && ref != &refs.back()) {
    for (auto it = refs.begin(); it != refs.end(); ++it) {
      if (&*it == ref) {
        refs.erase(it);
        break;
      }
    }
  }
}

}  // namespace ringlb::proxy
