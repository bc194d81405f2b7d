#include "server/proxy/snapshot_cache.h"

#include <vector>

#include "server/proxy/lifecycle.h"
#include "server/worker/context.h"

namespace ringlb::proxy {

SnapshotRef* SnapshotCache::acquire() {
  SnapshotRef* ref = current();
  ++ref->conns;
  return ref;
}

void SnapshotCache::refresh() {
  if (ctx_.shared.snapshot.version() != version_) current();
}

SnapshotRef* SnapshotCache::current() {
  const uint64_t version = ctx_.shared.snapshot.version();
  if (!refs_.empty() && version == version_) return &refs_.back();
  SnapshotRef ref;
  ref.snapshot = ctx_.shared.snapshot.get();
  ref.picker = std::make_unique<balancer::Picker>(*ref.snapshot, ctx_.index,
                                                  0x9E3779B97F4A7C15ULL * (ctx_.index + 1) ^ ctx_.now_ns);
  version_ = ref.snapshot->version;
  {
    std::lock_guard<std::mutex> lock(ctx_.shared.acl_mu);
    ref.acl = ctx_.shared.acl;
  }
  ref.needs_peer_name = ref.snapshot->policy == balancer::Policy::kMaglev ||
                        ctx_.shared.access_log != nullptr || !ref.acl->empty();
  for (const balancer::BackendSpec& b : ref.snapshot->backends) {
    if (b.proxy_protocol != 0) ref.needs_peer_name = true;
  }
  // Connections to a backend the new snapshot no longer has may finish, until the drain
  // deadline. A reload is rare, so one pass over the slots is fine here.
  std::vector<bool> present(balancer::BackendRegistry::kCapacity, false);
  for (const balancer::BackendSpec& b : ref.snapshot->backends) present[b.id] = true;
  const uint64_t deadline = ctx_.now_ns + to_ns(ctx_.config.drain_timeout);
  for (uint32_t id = 0; id < ctx_.conns.size(); ++id) {
    Conn& conn = ctx_.conns[id];
    if (conn.state == State::kFree || conn.backend_index < 0 || present[conn.backend_id]) continue;
    if (conn.deadline_ns == 0) {
      conn.deadline_ns = deadline;
      ctx_.lifecycle->rearm_timer(id);
    }
  }
  refs_.push_back(std::move(ref));
  // Drop older snapshots nobody uses any more.
  for (auto it = refs_.begin(); std::next(it) != refs_.end();) {
    it = it->conns == 0 ? refs_.erase(it) : std::next(it);
  }
  return &refs_.back();
}

void SnapshotCache::release(SnapshotRef* ref) {
  if (--ref->conns == 0 && ref != &refs_.back()) {
    for (auto it = refs_.begin(); it != refs_.end(); ++it) {
      if (&*it == ref) {
        refs_.erase(it);
        break;
      }
    }
  }
}

}  // namespace ringlb::proxy
