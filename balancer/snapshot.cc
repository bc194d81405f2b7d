#include "balancer/snapshot.h"

#include "balancer/maglev.h"

namespace ringlb::balancer {

bool parse_policy(const std::string& text, Policy* out) {
  if (text == "roundrobin") {
    *out = Policy::kRoundRobin;
  } else if (text == "leastconn") {
    *out = Policy::kLeastConn;
  } else if (text == "random2") {
    *out = Policy::kRandom2;
  } else if (text == "maglev") {
    *out = Policy::kMaglev;
  } else {
    return false;
  }
  return true;
}

const char* policy_name(Policy p) {
  switch (p) {
    case Policy::kRoundRobin: return "roundrobin";
    case Policy::kLeastConn: return "leastconn";
    case Policy::kRandom2: return "random2";
    case Policy::kMaglev: return "maglev";
  }
  return "?";
}

int32_t BackendRegistry::intern_cluster(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint32_t n = clusters_.load(std::memory_order_relaxed);
  for (uint32_t i = 0; i < n; ++i) {
    if (cluster_names_[i] == name) return static_cast<int32_t>(i);
  }
  if (n == kMaxClusters) return -1;
  cluster_names_[n] = name;
  clusters_.store(n + 1, std::memory_order_release);
  return static_cast<int32_t>(n);
}

int32_t BackendRegistry::intern(uint32_t cluster, const std::string& name, bool* added) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint32_t n = size_.load(std::memory_order_relaxed);
  for (uint32_t i = 0; i < n; ++i) {
    if (refs_[i].load(std::memory_order_relaxed) != 0 && cluster_of_[i] == cluster && names_[i] == name) {
      refs_[i].fetch_add(1, std::memory_order_relaxed);
      if (added != nullptr) *added = false;
      return static_cast<int32_t>(i);
    }
  }
  uint32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else if (n < kCapacity) {
    id = n;
    size_.store(n + 1, std::memory_order_release);
  } else {
    return -1;
  }
  names_[id] = name;
  cluster_of_[id] = cluster;
  refs_[id].store(1, std::memory_order_release);
  if (added != nullptr) *added = true;
  return static_cast<int32_t>(id);
}

void BackendRegistry::release(uint32_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (refs_[id].load(std::memory_order_relaxed) == 0) return;  // a bug; never free twice
  if (refs_[id].fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // Nothing names the id any more: clear it before it can be handed out again.
  BackendState& s = states_[id];
  s.active.store(0, std::memory_order_relaxed);
  s.up.store(1, std::memory_order_relaxed);
  s.connect_failures_in_a_row.store(0, std::memory_order_relaxed);
  s.ramp_from_ns.store(0, std::memory_order_relaxed);
  s.weight.store(0, std::memory_order_relaxed);
  s.admin.store(0, std::memory_order_relaxed);
  if (on_free_) on_free_(id);
  names_[id].clear();
  free_.push_back(id);
}

void BackendRegistry::set_on_free(std::function<void(uint32_t)> on_free) {
  std::lock_guard<std::mutex> lock(mu_);
  on_free_ = std::move(on_free);
}

uint32_t BackendRegistry::live_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return size_.load(std::memory_order_relaxed) - static_cast<uint32_t>(free_.size());
}

std::vector<BackendRegistry::Live> BackendRegistry::live_backends() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Live> out;
  const uint32_t n = size_.load(std::memory_order_relaxed);
  for (uint32_t i = 0; i < n; ++i) {
    if (refs_[i].load(std::memory_order_relaxed) != 0) out.push_back({i, cluster_of_[i], names_[i]});
  }
  return out;
}

void release_backends(Snapshot* s, BackendRegistry* registry) {
  for (BackendSpec& b : s->backends) {
    if (b.state == nullptr) continue;
    registry->release(b.id);
    b.state = nullptr;
  }
}

std::string finish_snapshot(Snapshot* s, BackendRegistry* registry, uint32_t maglev_size,
                            uint64_t added_at_ns) {
  if (s->backends.empty() && !s->retired && !s->may_be_empty) return "no backends";
  for (BackendSpec& b : s->backends) {
    bool added = false;
    const int32_t id = registry->intern(s->cluster, b.name, &added);
    if (id < 0) return "more than " + std::to_string(BackendRegistry::kCapacity) + " distinct backends";
    b.id = static_cast<uint32_t>(id);
    b.state = &registry->state(b.id);
    if (added && added_at_ns != 0 && b.slow_start_ms != 0) {
      b.state->ramp_from_ns.store(added_at_ns, std::memory_order_relaxed);
    }
  }
  if (s->policy == Policy::kMaglev) {
    if (!is_prime(maglev_size)) {
      return "Maglev table size " + std::to_string(maglev_size) + " is not prime";
    }
    std::vector<MaglevBackend> mb;
    for (const BackendSpec& b : s->backends) mb.push_back({b.name, b.weight});
    s->maglev = build_maglev(mb, maglev_size);
  }
  return {};
}

bool same_snapshot(const Snapshot& a, const Snapshot& b) {
  if (a.cluster != b.cluster || a.retired != b.retired || a.may_be_empty != b.may_be_empty ||
      a.connect_timeout_ms != b.connect_timeout_ms || a.connect_attempts != b.connect_attempts || a.queue_timeout_ms != b.queue_timeout_ms ||
      a.download_rate != b.download_rate || a.upload_rate != b.upload_rate ||
      a.policy != b.policy || a.hash_key != b.hash_key || a.maglev.size() != b.maglev.size() ||
      a.backends.size() != b.backends.size()) {
    return false;
  }
  // The Maglev table follows from the names, weights and its size, all compared here. `admin`
  // is not: workers act on the weight and the checks on the interval, which say what it does;
  // its copy in BackendState is written by every publish, published or not.
  for (size_t i = 0; i < a.backends.size(); ++i) {
    const BackendSpec& x = a.backends[i];
    const BackendSpec& y = b.backends[i];
    if (x.id != y.id || x.weight != y.weight || x.max_connections != y.max_connections ||
        x.backup != y.backup || x.proxy_protocol != y.proxy_protocol ||
        x.check_interval_ms != y.check_interval_ms || x.check_timeout_ms != y.check_timeout_ms ||
        x.rise != y.rise || x.fall != y.fall || x.slow_start_ms != y.slow_start_ms ||
        (x.check == nullptr) != (y.check == nullptr) || (x.check != nullptr && !(*x.check == *y.check))) {
      return false;
    }
  }
  return true;
}

void SnapshotHolder::publish(std::shared_ptr<const Snapshot> snapshot) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t v = snapshot->version;
  current_ = std::move(snapshot);
  version_.store(v, std::memory_order_release);
}

std::shared_ptr<const Snapshot> SnapshotHolder::get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

}  // namespace ringlb::balancer
