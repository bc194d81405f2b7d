#include "balancer/picker.h"

#include <time.h>

#include <algorithm>

#include "balancer/slow_start.h"

namespace ringlb::balancer {
namespace {

std::vector<uint32_t> weights(const Snapshot& s) {
  std::vector<uint32_t> w;
  for (const BackendSpec& b : s.backends) w.push_back(b.weight);
  return w;
}

// a.active / a.weight < b.active / b.weight, without division (weights below 2^21, so the
// products stay far from overflow).
bool less_loaded(int64_t active_a, uint64_t weight_a, int64_t active_b, uint64_t weight_b) {
  return active_a * static_cast<int64_t>(weight_b) < active_b * static_cast<int64_t>(weight_a);
}

uint64_t monotonic_now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

Picker::Picker(const Snapshot& snapshot, unsigned phase, uint64_t seed)
    : snapshot_(snapshot), round_robin_(weights(snapshot)), rng_(seed | 1) {
  uint64_t sum = 0;
  for (const BackendSpec& b : snapshot.backends) {
    has_slow_start_ = has_slow_start_ || b.slow_start_ms != 0;
    sum += b.weight;
    weight_prefix_.push_back(sum);
  }
  for (unsigned i = 0; i < phase; ++i) round_robin_.pick();
  cursor_ = phase % std::max<size_t>(1, snapshot.backends.size());
  constexpr uint64_t kMaxSchedule = 1 << 16;
  if (snapshot.policy == Policy::kRoundRobin && sum > 0 && sum <= kMaxSchedule) {
    SmoothRoundRobin generator(weights(snapshot));
    schedule_.reserve(sum);
    for (uint64_t i = 0; i < sum; ++i) schedule_.push_back(static_cast<uint32_t>(generator.pick()));
    schedule_pos_ = phase % sum;
  }
}

void Picker::refresh_ramp() {
  ramping_ = false;
  now_ns_ = monotonic_now_ns();
  for (size_t i = 0; i < snapshot_.backends.size(); ++i) {
    if (factor(i) < kRampScale) {
      ramping_ = true;
      return;
    }
  }
}

uint64_t Picker::factor(size_t i) const {
  const BackendSpec& b = snapshot_.backends[i];
  if (b.slow_start_ms == 0) return kRampScale;
  const uint64_t from = b.state->ramp_from_ns.load(std::memory_order_relaxed);
  if (from == 0) return kRampScale;
  // Another thread may have stamped it a moment after this pick read the clock.
  const uint64_t elapsed = now_ns_ > from ? now_ns_ - from : 0;
  return slow_start_factor(elapsed, uint64_t{b.slow_start_ms} * 1'000'000ULL);
}

int Picker::ramp_round_robin(uint64_t tried, bool backup) {
  // nginx's smooth weighted round robin, live: each eligible backend gains its effective
  // weight, the one ahead is picked and pays the total back.
  const size_t n = snapshot_.backends.size();
  ramp_current_.resize(n);
  int best = -1;
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!eligible(i, tried, backup)) continue;
    const auto w = static_cast<int64_t>(weight_of(i));
    ramp_current_[i] += w;
    total += w;
    if (best < 0 || ramp_current_[i] > ramp_current_[static_cast<size_t>(best)]) best = static_cast<int>(i);
  }
  if (best >= 0) ramp_current_[static_cast<size_t>(best)] -= total;
  return best;
}

int Picker::round_robin(uint64_t tried, bool backup) {
  if (ramping_) return ramp_round_robin(tried, backup);
  if (schedule_.empty()) {
    return round_robin_.pick([&](int i) { return eligible(static_cast<size_t>(i), tried, backup); });
  }
  // Walk the period from where we are; entries that cannot be used are skipped, which keeps the
  // remaining backends in their interleaved weighted order.
  const size_t n = schedule_.size();
  for (size_t k = 0; k < n; ++k) {
    const uint32_t i = schedule_[schedule_pos_];
    schedule_pos_ = schedule_pos_ + 1 == n ? 0 : schedule_pos_ + 1;
    if (eligible(i, tried, backup)) return static_cast<int>(i);
  }
  return -1;
}

uint64_t Picker::next_random() {
  // xorshift64*: fast, and quality enough for choosing among backends.
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return rng_ * 2685821657736338717ULL;
}

bool Picker::eligible_if_not_full(size_t i, uint64_t tried, bool backup) const {
  const BackendSpec& b = snapshot_.backends[i];
  if (b.backup != backup || b.weight == 0) return false;
  if (i < 64 && (tried >> i) & 1) return false;
  return b.state->up.load(std::memory_order_relaxed) != 0;
}

bool Picker::eligible(size_t i, uint64_t tried, bool backup) const {
  if (!eligible_if_not_full(i, tried, backup)) return false;
  const BackendSpec& b = snapshot_.backends[i];
  if (b.max_connections != 0 &&
      b.state->active.load(std::memory_order_relaxed) >= static_cast<int32_t>(b.max_connections)) {
    return false;
  }
  return true;
}

bool Picker::any(uint64_t tried, Test test) const {
  for (bool backup : {false, true}) {
    for (size_t i = 0; i < snapshot_.backends.size(); ++i) {
      if ((this->*test)(i, tried, backup)) return true;
    }
  }
  return false;
}

bool Picker::can_take(uint64_t tried) const { return any(tried, &Picker::eligible); }

bool Picker::waiting_helps(uint64_t tried) const { return any(tried, &Picker::eligible_if_not_full); }

int Picker::pick(uint64_t key_hash, uint64_t tried) {
  if (has_slow_start_) refresh_ramp();
  const int primary = pick_tier(key_hash, tried, false);
  return primary >= 0 ? primary : pick_tier(key_hash, tried, true);
}

int Picker::pick_tier(uint64_t key_hash, uint64_t tried, bool backup) {
  switch (snapshot_.policy) {
    case Policy::kRoundRobin:
      return round_robin(tried, backup);
    case Policy::kLeastConn:
      return least_loaded(tried, backup);
    case Policy::kRandom2:
      return random_two(tried, backup);
    case Policy::kMaglev:
      return maglev(key_hash, tried, backup);
  }
  return -1;
}

int Picker::least_loaded(uint64_t tried, bool backup) {
  const size_t n = snapshot_.backends.size();
  int best = -1;
  int64_t best_active = 0;
  uint64_t best_weight = 1;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (cursor_ + k) % n;
    if (!eligible(i, tried, backup)) continue;
    const BackendSpec& b = snapshot_.backends[i];
    const int64_t active = b.state->active.load(std::memory_order_relaxed);
    const uint64_t weight = weight_of(i);
    if (best < 0 || less_loaded(active, weight, best_active, best_weight)) {
      best = static_cast<int>(i);
      best_active = active;
      best_weight = weight;
    }
  }
  if (best >= 0) cursor_ = (static_cast<size_t>(best) + 1) % n;
  return best;
}

int Picker::random_two(uint64_t tried, bool backup) {
  const size_t n = snapshot_.backends.size();
  // Every backend drained (weight 0): nothing to draw from (and no modulo by a zero total).
  if (weight_prefix_.empty() || weight_prefix_.back() == 0) return -1;
  // Two weighted draws; an ineligible draw is redrawn a few times, then an eligible backend is
  // found by scanning, so a mostly-down set still answers.
  auto draw = [&](int avoid) -> int {
    const uint64_t total = weight_prefix_.back();
    for (int attempt = 0; attempt < 8; ++attempt) {
      const uint64_t r = next_random() % total;
      const size_t i = static_cast<size_t>(
          std::upper_bound(weight_prefix_.begin(), weight_prefix_.end(), r) - weight_prefix_.begin());
      if (static_cast<int>(i) == avoid || !eligible(i, tried, backup)) continue;
      // A ramping backend's draw stands with the odds of its share of its weight.
      if (ramping_ && next_random() % kRampScale >= factor(i)) continue;
      return static_cast<int>(i);
    }
    const size_t start = next_random() % n;
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (start + k) % n;
      if (static_cast<int>(i) != avoid && eligible(i, tried, backup)) return static_cast<int>(i);
    }
    return -1;
  };
  const int a = draw(-1);
  if (a < 0) return -1;
  const int b = draw(a);
  if (b < 0) return a;
  const auto ia = static_cast<size_t>(a), ib = static_cast<size_t>(b);
  const int64_t load_a = snapshot_.backends[ia].state->active.load(std::memory_order_relaxed);
  const int64_t load_b = snapshot_.backends[ib].state->active.load(std::memory_order_relaxed);
  return less_loaded(load_b, weight_of(ib), load_a, weight_of(ia)) ? b : a;
}

int Picker::maglev(uint64_t key_hash, uint64_t tried, bool backup) {
  if (!backup && !snapshot_.maglev.empty()) {
    // The key's own entry first; when that backend cannot take it, walk the following entries,
    // so every client of a down backend still lands on a fixed, shared choice.
    const size_t m = snapshot_.maglev.size();
    const size_t start = key_hash % m;
    // Under slow start a ramping backend keeps the keys whose own point falls in its share (the
    // same keys throughout, more as it grows); the others walk on, as if it were down.
    const uint64_t key_point = (key_hash * 0x9E3779B97F4A7C15ULL) >> 54;  // 0 to 1023
    for (size_t k = 0; k < m; ++k) {
      const int32_t i = snapshot_.maglev[(start + k) % m];
      if (i >= 0 && eligible(static_cast<size_t>(i), tried, false) &&
          (!ramping_ || key_point < factor(static_cast<size_t>(i)))) {
        return i;
      }
      if (k > 64 && k > m / 4) break;  // nothing eligible nearby: scan the list instead
    }
  }
  const size_t n = snapshot_.backends.size();
  const size_t start = key_hash % n;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (start + k) % n;
    if (eligible(i, tried, backup)) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace ringlb::balancer
