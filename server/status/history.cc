#include "server/status/history.h"

#include <algorithm>

namespace ringlb::status {
namespace {

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

void History::start(std::chrono::milliseconds tick) {
  tick_length_ = tick;
  thread_ = std::thread([this] { run(); });
}

void History::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void History::run() {
  std::unique_lock<std::mutex> lock(mu_);
  auto next = std::chrono::steady_clock::now();
  while (!stopping_) {
    next += tick_length_;
    if (stop_cv_.wait_until(lock, next, [this] { return stopping_; })) break;
    lock.unlock();
    tick();
    lock.lock();
  }
}

void History::read(std::unique_ptr<Series>* slot, const std::string& identity, uint64_t total, uint32_t active,
                   bool up) {
  if (!*slot || (*slot)->identity != identity) {
    *slot = std::make_unique<Series>();
    (*slot)->identity = identity;
    (*slot)->first_tick = ticks_;
    (*slot)->first_sample = samples_;
  }
  Series& s = **slot;
  s.window[ticks_ % kWindow] = total;
  s.active = active;
  s.up_ticks += up ? 1 : 0;
  s.seen_ticks += 1;
}

void History::tick() {
  // Read outside the lock what takes other locks (the registry's, the policies'), then record.
  const std::vector<balancer::BackendRegistry::Live> live = shared_.backends.live_backends();
  std::shared_ptr<const ListenerPolicies> policies;
  {
    std::lock_guard<std::mutex> lock(shared_.policies_mu);
    policies = shared_.policies;
  }
  const metrics::Registry* registry = shared_.registry.get();
  std::lock_guard<std::mutex> lock(mu_);
  tick_time_[ticks_ % kWindow] = steady_seconds();
  std::vector<bool> backend_live(balancer::BackendRegistry::kCapacity, false);
  if (backends_.empty()) backends_.resize(balancer::BackendRegistry::kCapacity);
  for (const balancer::BackendRegistry::Live& b : live) {
    uint64_t attempts = 0, failures = 0;
    if (registry) {
      for (const auto& w : registry->workers) {
        attempts += w->backends[b.id].connect_attempts.get();
        failures += w->backends[b.id].connect_failures.get();
      }
    }
    const balancer::BackendState& state = shared_.backends.state(b.id);
    read(&backends_[b.id], shared_.backends.cluster_name(b.cluster) + "/" + b.name,
         attempts >= failures ? attempts - failures : 0,
         static_cast<uint32_t>(std::max(0, state.active.load(std::memory_order_relaxed))),
         state.up.load(std::memory_order_relaxed) != 0);
    backend_live[b.id] = true;
  }
  for (size_t id = 0; id < backends_.size(); ++id) {
    if (!backend_live[id]) backends_[id].reset();  // freed: its memory goes with it
  }
  const size_t indexes = policies ? policies->listeners.size() : 0;
  if (listeners_.size() < indexes) listeners_.resize(indexes);
  for (size_t i = 0; i < listeners_.size(); ++i) {
    if (i >= indexes || policies->listeners[i].removed) {
      listeners_[i].reset();
      continue;
    }
    const uint64_t accepted =
        registry && i < registry->listener_accepted.size() ? registry->listener_accepted[i].get() : 0;
    read(&listeners_[i], shared_.routes[i].name, accepted,
         shared_.listener_active[i].load(std::memory_order_relaxed), true);
  }
  ++ticks_;
  if (ticks_ % kSampleSeconds != 0) return;
  // The end of an interval: one sample for every series.
  for (auto* list : {&backends_, &listeners_}) {
    for (std::unique_ptr<Series>& s : *list) {
      if (!s) continue;
      Sample& out = s->ring[samples_ % kSamples];
      out.active = s->active;
      out.rate = static_cast<float>(rate_of(*s, kSampleSeconds).value_or(0));
      out.up = s->up_ticks;
      out.seen = s->seen_ticks;
      s->up_ticks = s->seen_ticks = 0;
    }
  }
  ++samples_;
}

std::optional<double> History::rate_of(const Series& s, uint64_t ticks) const {
  // Ticks t in [first_tick, ticks_) were read; the rate runs from the oldest one in reach.
  if (ticks_ <= s.first_tick + 1) return std::nullopt;
  const uint64_t newest = ticks_ - 1;
  const uint64_t span = std::min<uint64_t>({ticks, newest - s.first_tick, kSampleSeconds});
  const uint64_t oldest = newest - span;
  const double seconds = tick_time_[newest % kWindow] - tick_time_[oldest % kWindow];
  if (seconds <= 0) return std::nullopt;
  const uint64_t now = s.window[newest % kWindow], then = s.window[oldest % kWindow];
  return now >= then ? static_cast<double>(now - then) / seconds : 0.0;
}

Json History::summary() const {
  std::lock_guard<std::mutex> lock(mu_);
  Json out;
  out["interval_seconds"] = kSampleSeconds;
  out["capacity"] = kSamples;
  out["samples"] = std::min<uint64_t>(samples_, kSamples);
  return out;
}

Json History::series_json(const Series* s, bool with_up) const {
  Json active = Json::array(), rate = Json::array(), up = Json::array();
  const uint64_t from = samples_ > kSamples ? samples_ - kSamples : 0;
  for (uint64_t n = from; n < samples_; ++n) {
    if (s == nullptr || n < s->first_sample) {
      active.push_back(nullptr);
      rate.push_back(nullptr);
      up.push_back(nullptr);
      continue;
    }
    const Sample& x = s->ring[n % kSamples];
    active.push_back(x.active);
    rate.push_back(static_cast<double>(static_cast<int64_t>(x.rate * 100 + 0.5)) / 100);  // 2 decimals
    up.push_back(x.seen ? Json(static_cast<double>(x.up) / x.seen) : Json(nullptr));
  }
  Json out;
  out["active"] = std::move(active);
  out["rate"] = std::move(rate);
  if (with_up) out["up"] = std::move(up);
  return out;
}

const History::Series* History::backend(uint32_t id, const std::string& cluster, const std::string& name) const {
  if (id >= backends_.size() || !backends_[id]) return nullptr;
  const Series* s = backends_[id].get();
  return s->identity == cluster + "/" + name ? s : nullptr;
}

Json History::backend_series(uint32_t id, const std::string& cluster, const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  return series_json(backend(id, cluster, name), true);
}

Json History::listener_series(size_t index) const {
  std::lock_guard<std::mutex> lock(mu_);
  return series_json(index < listeners_.size() ? listeners_[index].get() : nullptr, false);
}

std::optional<double> History::backend_rate(uint32_t id, const std::string& cluster, const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  const Series* s = backend(id, cluster, name);
  return s ? rate_of(*s, kSampleSeconds) : std::nullopt;
}

std::optional<double> History::listener_rate(size_t index) const {
  std::lock_guard<std::mutex> lock(mu_);
  return index < listeners_.size() && listeners_[index] ? rate_of(*listeners_[index], kSampleSeconds) : std::nullopt;
}

}  // namespace ringlb::status
