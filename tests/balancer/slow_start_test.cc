#include "balancer/slow_start.h"

#include <gtest/gtest.h>
#include <time.h>

#include "balancer/picker.h"

namespace ringlb::balancer {
namespace {

constexpr uint64_t kSec = 1'000'000'000ULL;

TEST(SlowStart, FactorRampsLinearlyFromTheFloor) {
  EXPECT_EQ(slow_start_factor(0, 10 * kSec), kRampFloor);
  EXPECT_EQ(slow_start_factor(kSec / 100, 10 * kSec), kRampFloor) << "below the floor: the floor";
  EXPECT_EQ(slow_start_factor(5 * kSec, 10 * kSec), kRampScale / 2);
  EXPECT_EQ(slow_start_factor(9 * kSec, 10 * kSec), kRampScale * 9 / 10);
  EXPECT_EQ(slow_start_factor(10 * kSec, 10 * kSec), kRampScale);
  EXPECT_EQ(slow_start_factor(100 * kSec, 10 * kSec), kRampScale);
  EXPECT_EQ(slow_start_factor(0, 0), kRampScale) << "no duration, no ramp";
  uint64_t last = 0;
  for (uint64_t t = 0; t <= 12 * kSec; t += kSec / 4) {
    EXPECT_GE(slow_start_factor(t, 10 * kSec), last);
    last = slow_start_factor(t, 10 * kSec);
  }
  EXPECT_EQ(effective_weight(3, 5 * kSec, 10 * kSec), 3 * kRampScale / 2);
  // The longest duration the config allows does not overflow.
  const uint64_t max = 576ULL * 3600 * kSec;
  EXPECT_EQ(slow_start_factor(max / 2, max), kRampScale / 2);
}

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * kSec + static_cast<uint64_t>(ts.tv_nsec);
}

// Two weight-1 backends; b ramps, `elapsed` into a 10 s slow start. Returns b's share of 4,000
// picks under `policy`, each pick's connection held (leastconn and random2 compare them).
double share_of_ramping(Policy policy, uint64_t elapsed, bool hold = true) {
  BackendRegistry registry;
  Snapshot s;
  s.policy = policy;
  for (const char* name : {"a", "b"}) {
    BackendSpec b;
    b.name = name;
    b.slow_start_ms = 10'000;
    s.backends.push_back(b);
  }
  EXPECT_EQ(finish_snapshot(&s, &registry, 65537), "");
  s.backends[1].state->ramp_from_ns = now_ns() - elapsed;
  Picker p(s, 0, 7);
  int b = 0;
  constexpr int kPicks = 4000;
  for (int i = 0; i < kPicks; ++i) {
    const int pick = p.pick(static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ULL, 0);
    b += pick == 1;
    if (pick >= 0 && hold) s.backends[static_cast<size_t>(pick)].state->active++;
  }
  return static_cast<double>(b) / kPicks;
}

TEST(SlowStart, EveryPolicyGivesARampingBackendItsShare) {
  for (Policy policy : {Policy::kRoundRobin, Policy::kLeastConn, Policy::kRandom2, Policy::kMaglev}) {
    double last = 0;
    for (uint64_t t : {1 * kSec, 3 * kSec, 5 * kSec, 7 * kSec, 9 * kSec}) {
      const double share = share_of_ramping(policy, t);
      EXPECT_GT(share, last) << policy_name(policy) << " at " << t / kSec << " s";
      last = share;
    }
    EXPECT_LT(share_of_ramping(policy, 1 * kSec), 0.2) << policy_name(policy);
    EXPECT_NEAR(share_of_ramping(policy, 11 * kSec), 0.5, 0.05) << policy_name(policy) << " after the ramp";
  }
}

TEST(SlowStart, Random2DrawsARampingBackendWithItsOdds) {
  // No connections held: the load comparison ties (the first draw wins), so only the draws'
  // odds keep the ramping backend at its share.
  EXPECT_LT(share_of_ramping(Policy::kRandom2, 1 * kSec, false), 0.2);
  EXPECT_NEAR(share_of_ramping(Policy::kRandom2, 11 * kSec, false), 0.5, 0.05);
}

TEST(SlowStart, RoundRobinShareFollowsTheEffectiveWeight) {
  // At 5 s of 10 its weight counts half: 0.5 / 1.5 of the picks.
  EXPECT_NEAR(share_of_ramping(Policy::kRoundRobin, 5 * kSec), 1.0 / 3, 0.02);
}

TEST(SlowStart, MaglevKeepsTheSameKeysWhileItGrows) {
  BackendRegistry registry;
  Snapshot s;
  s.policy = Policy::kMaglev;
  for (const char* name : {"a", "b", "c"}) {
    BackendSpec b;
    b.name = name;
    b.slow_start_ms = 10'000;
    s.backends.push_back(b);
  }
  ASSERT_EQ(finish_snapshot(&s, &registry, 65537), "");
  Picker p(s, 0, 1);
  std::vector<int> full;
  for (uint64_t k = 0; k < 3000; ++k) full.push_back(p.pick(k * 7919, 0));
  s.backends[1].state->ramp_from_ns = now_ns() - 3 * kSec;
  int kept = 0, lost = 0;
  for (uint64_t k = 0; k < 3000; ++k) {
    const int now = p.pick(k * 7919, 0);
    if (full[k] == 1) {
      (now == 1 ? kept : lost)++;
    } else {
      EXPECT_EQ(now, full[k]) << "a key of another backend moved";
    }
  }
  EXPECT_GT(lost, kept) << "at 30% it keeps the smaller part of its keys";
  EXPECT_GT(kept, 0);
}

}  // namespace
}  // namespace ringlb::balancer
