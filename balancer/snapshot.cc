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

int32_t BackendRegistry::intern(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint32_t n = size_.load(std::memory_order_relaxed);
  for (uint32_t i = 0; i < n; ++i) {
    if (names_[i] == name) return static_cast<int32_t>(i);
  }
  if (n == kCapacity) return -1;
  names_[n] = name;
  size_.store(n + 1, std::memory_order_release);
  return static_cast<int32_t>(n);
}

std::string finish_snapshot(Snapshot* s, BackendRegistry* registry, uint32_t maglev_size) {
  if (s->backends.empty()) return "no backends";
  for (BackendSpec& b : s->backends) {
    const int32_t id = registry->intern(b.name);
    if (id < 0) return "more than " + std::to_string(BackendRegistry::kCapacity) + " distinct backends";
    b.id = static_cast<uint32_t>(id);
    b.state = &registry->state(b.id);
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
