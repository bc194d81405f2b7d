#include "server/health/schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace ringlb::health {
namespace {

constexpr uint64_t kSecond = 1'000'000'000;
constexpr uint64_t kTick = 50'000'000;  // the checker's tick

// 1,000 consecutive ids over a 1 s interval land in each 50 ms tick about 50 times: no tick
// gets more than 1.5x its share, none is left empty (a burst would put them all in one).
TEST(Schedule, PhasesSpreadConsecutiveIdsOverTheInterval) {
  std::vector<int> per_tick(kSecond / kTick);
  for (uint32_t id = 0; id < 1000; ++id) {
    const uint64_t d = phase_delay_ns(id, kSecond);
    ASSERT_GT(d, 0u);
    ASSERT_LE(d, kSecond);
    ++per_tick[std::min<uint64_t>(d / kTick, per_tick.size() - 1)];
  }
  for (size_t t = 0; t < per_tick.size(); ++t) {
    EXPECT_GE(per_tick[t], 35) << "tick " << t;
    EXPECT_LE(per_tick[t], 75) << "tick " << t;
  }
}

// A small cluster (4 backends with ids next to each other) is spread too, not bunched in one
// part of the interval: no two of them within a tenth of the interval of each other.
TEST(Schedule, SmallClusterIsSpread) {
  std::vector<uint64_t> d;
  for (uint32_t id = 17; id < 21; ++id) d.push_back(phase_delay_ns(id, kSecond));
  std::sort(d.begin(), d.end());
  for (size_t i = 1; i < d.size(); ++i) EXPECT_GE(d[i] - d[i - 1], kSecond / 10) << i;
}

TEST(Schedule, PhaseIsBoundedForTheLongestInterval) {
  const uint64_t longest = uint64_t{0xFFFFFFFF} * 1'000'000;  // the config's limit, in ns
  for (uint32_t id : {0u, 1u, 1023u, 0xFFFFFFFEu}) {
    const uint64_t d = phase_delay_ns(id, longest);
    EXPECT_GT(d, 0u);
    EXPECT_LE(d, longest);
  }
  EXPECT_EQ(phase_delay_ns(5, 0), 0u);
  EXPECT_EQ(phase_delay_ns(5, 1), 1u);  // never 0: due again "now" would check every tick
}

TEST(Schedule, NextDueKeepsThePhaseDespiteALateTick) {
  // Due at 10.00 s, started 40 ms late: due again at 11.00 s, not 11.04 s.
  EXPECT_EQ(next_due_ns(10 * kSecond, 10 * kSecond + 40'000'000, kSecond), 11 * kSecond);
  // Ten ticks late in a row do not drift at all.
  uint64_t due = 3 * kSecond;
  for (int i = 0; i < 10; ++i) due = next_due_ns(due, due + 49'000'000, kSecond);
  EXPECT_EQ(due, 13 * kSecond);
}

TEST(Schedule, NoCatchUpBurstAfterAStall) {
  // Due at 10 s but run at 13.5 s (the checker stalled): next at 14.5 s, not at 11, 12, 13.
  EXPECT_EQ(next_due_ns(10 * kSecond, 13 * kSecond + kSecond / 2, kSecond), 14 * kSecond + kSecond / 2);
}

}  // namespace
}  // namespace ringlb::health
