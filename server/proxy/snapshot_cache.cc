#include "server/proxy/snapshot_cache.h"

namespace ringlb::proxy {
namespace {

__kernel_timespec to_timespec(uint64_t ns) {
  __kernel_timespec ts{};
  ts.tv_sec = static_cast<long long>(ns / 1'000'000'000ULL);
  ts.tv_nsec = static_cast<long long>(ns % 1'000'000'000ULL);
  return ts;
}

}  // namespace

SnapshotCache::SnapshotCache(SharedState& shared, unsigned worker)
    : shared_(shared), worker_(worker), clusters_(balancer::BackendRegistry::kMaxClusters) {
  // Published before any worker starts.
  std::lock_guard<std::mutex> lock(shared_.policies_mu);
  policies_ = shared_.policies;
  policies_version_ = policies_->version;
}

SnapshotRef* SnapshotCache::acquire(uint16_t cluster, uint64_t now_ns) {
  SnapshotRef* ref = current(cluster, now_ns);
  ++ref->conns;
  return ref;
}

bool SnapshotCache::refresh_policies() {
  if (shared_.policies_version.load(std::memory_order_acquire) == policies_version_) return false;
  {
    std::lock_guard<std::mutex> lock(shared_.policies_mu);
    policies_ = shared_.policies;
  }
  policies_version_ = policies_->version;
  return true;
}

void SnapshotCache::refresh_clusters(uint64_t now_ns,
                                     const std::function<void(uint16_t, const balancer::Snapshot&)>& changed) {
  const uint32_t n = shared_.backends.clusters();
  for (uint32_t c = 0; c < n; ++c) {
    const uint64_t version = shared_.clusters[c].version();
    if (version == 0 || version == clusters_[c].seen) continue;
    const SnapshotRef* ref = current(static_cast<uint16_t>(c), now_ns);
    clusters_[c].seen = ref->snapshot->version;
    changed(static_cast<uint16_t>(c), *ref->snapshot);
  }
}

SnapshotRef* SnapshotCache::current(uint16_t cluster, uint64_t now_ns) {
  Cluster& cached = clusters_[cluster];
  const balancer::SnapshotHolder& holder = shared_.clusters[cluster];
  const uint64_t version = holder.version();
  if (!cached.refs.empty() && version == cached.version) return &cached.refs.back();
  SnapshotRef ref;
  ref.snapshot = holder.get();
  ref.cluster = cluster;
  ref.picker = std::make_unique<balancer::Picker>(*ref.snapshot, worker_, 0x9E3779B97F4A7C15ULL * (worker_ + 1) ^ now_ns);
  cached.version = ref.snapshot->version;
  ref.connect_ts = to_timespec(uint64_t{ref.snapshot->connect_timeout_ms} * 1'000'000ULL);
  ref.queue_ns = uint64_t{ref.snapshot->queue_timeout_ms} * 1'000'000ULL;
  ref.needs_peer_name = ref.snapshot->policy == balancer::Policy::kMaglev;
  for (const balancer::BackendSpec& b : ref.snapshot->backends) {
    if (b.proxy_protocol != 0) ref.needs_peer_name = true;
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
