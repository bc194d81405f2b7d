#include "server/worker/timer_wheel.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <vector>

namespace ringlb::worker {
namespace {

// Collects what one advance() fired.
std::vector<uint32_t> advance_to(TimerWheel& wheel, uint64_t now) {
  std::vector<uint32_t> fired;
  const size_t n = wheel.advance(now, [&](uint32_t id) { fired.push_back(id); });
  EXPECT_EQ(n, fired.size());
  return fired;
}

TEST(TimerWheelTest, FiresAtDeadlineNeverBefore) {
  // Every deadline over a few revolutions, on and off slot boundaries: the first now_ns that fires
  // it is the deadline itself, with advance() called at every nanosecond.
  for (uint64_t deadline = 0; deadline < 300; ++deadline) {
    TimerWheel wheel(4, 10, 8, 0);
    wheel.schedule(2, deadline);
    uint64_t fired_at = UINT64_MAX;
    for (uint64_t now = 0; now <= 300 && fired_at == UINT64_MAX; ++now) {
      if (!advance_to(wheel, now).empty()) fired_at = now;
    }
    EXPECT_EQ(fired_at, deadline) << "deadline " << deadline;
    EXPECT_EQ(wheel.size(), 0u);
  }
}

TEST(TimerWheelTest, FiresAtDeadlineWithCoarseSteps) {
  // Ticks of 7 ns against 10 ns slots: a timer fires at the first tick at or after its deadline.
  for (uint64_t deadline = 1; deadline < 200; ++deadline) {
    TimerWheel wheel(1, 10, 4, 0);
    wheel.schedule(0, deadline);
    uint64_t fired_at = UINT64_MAX;
    for (uint64_t now = 0; now <= 210 && fired_at == UINT64_MAX; now += 7) {
      if (!advance_to(wheel, now).empty()) fired_at = now;
    }
    EXPECT_GE(fired_at, deadline);
    EXPECT_LT(fired_at, deadline + 7);
  }
}

TEST(TimerWheelTest, FarFutureTimersWaitForTheirRevolution) {
  // One revolution is 8 * 10 = 80 ns; these are up to 12 revolutions away.
  TimerWheel wheel(3, 10, 8, 0);
  wheel.schedule(0, 1000);
  wheel.schedule(1, 85);  // just past one revolution: the same slot as 5
  wheel.schedule(2, 5);
  std::map<uint32_t, uint64_t> fired_at;
  for (uint64_t now = 0; now <= 1200; now += 3) {
    for (const uint32_t id : advance_to(wheel, now)) {
      EXPECT_FALSE(fired_at.contains(id)) << "fired twice: " << id;
      fired_at[id] = now;
    }
  }
  EXPECT_EQ(fired_at, (std::map<uint32_t, uint64_t>{{0, 1002}, {1, 87}, {2, 6}}));
}

TEST(TimerWheelTest, RescheduleReplaces) {
  TimerWheel wheel(4, 10, 8, 0);
  wheel.schedule(1, 100);
  wheel.schedule(1, 500);  // later
  wheel.schedule(2, 500);
  wheel.schedule(2, 50);   // earlier
  EXPECT_EQ(wheel.size(), 2u);
  EXPECT_EQ(wheel.deadline(1), 500u);
  EXPECT_EQ(advance_to(wheel, 100), std::vector<uint32_t>{2});
  EXPECT_TRUE(wheel.scheduled(1));
  EXPECT_FALSE(wheel.scheduled(2));
  EXPECT_EQ(advance_to(wheel, 499), std::vector<uint32_t>{});
  EXPECT_EQ(advance_to(wheel, 500), std::vector<uint32_t>{1});
  EXPECT_EQ(advance_to(wheel, 5000), std::vector<uint32_t>{});  // neither fires again
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, CancelRemovesFromAnywhereInASlot) {
  TimerWheel wheel(8, 10, 8, 0);
  for (uint32_t id = 0; id < 5; ++id) wheel.schedule(id, 41 + id);  // one slot, five entries
  wheel.cancel(0);  // the tail (entries are pushed at the front)
  wheel.cancel(2);  // the middle
  wheel.cancel(4);  // the head
  wheel.cancel(4);  // again: a no-op
  wheel.cancel(7);  // never scheduled: a no-op
  EXPECT_EQ(wheel.size(), 2u);
  EXPECT_FALSE(wheel.scheduled(0));
  EXPECT_TRUE(wheel.scheduled(1));
  const std::vector<uint32_t> fired = advance_to(wheel, 100);
  EXPECT_EQ(std::set<uint32_t>(fired.begin(), fired.end()), (std::set<uint32_t>{1, 3}));
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_EQ(wheel.next_expiry_hint(), UINT64_MAX);
}

TEST(TimerWheelTest, FireReschedulesItself) {
  // A periodic timer every 30 ns, advanced every 100 ns: a re-arm that is already due waits for
  // the next advance() instead of firing twice in this one.
  TimerWheel wheel(1, 10, 8, 0);
  wheel.schedule(0, 30);
  std::vector<uint64_t> deadlines_fired;
  for (uint64_t now = 100; now <= 1000; now += 100) {
    const size_t n = wheel.advance(now, [&](uint32_t id) {
      deadlines_fired.push_back(wheel.deadline(id));
      wheel.schedule(id, wheel.deadline(id) + 30);
    });
    EXPECT_EQ(n, 1u) << "at " << now;
    EXPECT_TRUE(wheel.scheduled(0));
  }
  EXPECT_EQ(deadlines_fired.size(), 10u);
  for (size_t i = 0; i < deadlines_fired.size(); ++i) EXPECT_EQ(deadlines_fired[i], 30 * (i + 1));
}

TEST(TimerWheelTest, FireSchedulesAndCancelsOthers) {
  // Ticks of 10 ns: 42, 43 and 48 share the slot (40, 50], walked by advance(45).
  TimerWheel wheel(8, 10, 8, 0);
  wheel.schedule(0, 42);
  wheel.schedule(1, 43);  // whichever of 0 and 1 fires first cancels the other
  wheel.schedule(2, 48);  // not due: re-armed for later by the first to fire
  std::vector<uint32_t> fired;
  const size_t n = wheel.advance(45, [&](uint32_t id) {
    fired.push_back(id);
    wheel.cancel(1 - id);
    wheel.schedule(2, 75);   // a later deadline in a slot still to come
    wheel.schedule(3, 10);   // already due: the next advance()
    wheel.schedule(4, 45);   // the slot being walked, due: also the next advance()
    wheel.schedule(5, 125);  // the slot being walked, a revolution later
    wheel.schedule(6, 49);   // the slot being walked, not due yet
  });
  EXPECT_EQ(n, 1u);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_FALSE(wheel.scheduled(1 - fired[0]));
  EXPECT_EQ(wheel.size(), 5u);
  EXPECT_LE(wheel.next_expiry_hint(), 10u);
  const std::vector<uint32_t> next = advance_to(wheel, 45);
  EXPECT_EQ(std::set<uint32_t>(next.begin(), next.end()), (std::set<uint32_t>{3, 4}));
  EXPECT_EQ(advance_to(wheel, 48), std::vector<uint32_t>{});
  EXPECT_EQ(advance_to(wheel, 49), std::vector<uint32_t>{6});
  EXPECT_EQ(advance_to(wheel, 74), std::vector<uint32_t>{});
  EXPECT_EQ(advance_to(wheel, 75), std::vector<uint32_t>{2});
  EXPECT_EQ(advance_to(wheel, 124), std::vector<uint32_t>{});
  EXPECT_EQ(advance_to(wheel, 125), std::vector<uint32_t>{5});
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, LongGapFiresEverythingDueExactlyOnce) {
  // 16 slots of 10 ns: 160 ns a revolution. Deadlines over 60 revolutions, one jump of 30.
  constexpr uint32_t kTimers = 1000;
  TimerWheel wheel(kTimers, 10, 16, 0);
  for (uint32_t id = 0; id < kTimers; ++id) wheel.schedule(id, (id * 7919u) % 9600);
  std::vector<int> times_fired(kTimers, 0);
  wheel.advance(4800, [&](uint32_t id) {
    ++times_fired[id];
    EXPECT_LE(wheel.deadline(id), 4800u);
  });
  for (uint32_t id = 0; id < kTimers; ++id) {
    EXPECT_EQ(times_fired[id], (id * 7919u) % 9600 <= 4800 ? 1 : 0) << id;
    EXPECT_EQ(wheel.scheduled(id), times_fired[id] == 0);
  }
  wheel.advance(100000, [&](uint32_t id) { ++times_fired[id]; });
  for (uint32_t id = 0; id < kTimers; ++id) EXPECT_EQ(times_fired[id], 1) << id;
  EXPECT_EQ(wheel.size(), 0u);
}

// A reference model: the armed timers ordered by deadline.
struct Model {
  std::multimap<uint64_t, uint32_t> by_deadline;
  std::vector<std::multimap<uint64_t, uint32_t>::iterator> where;
  std::vector<bool> armed;
  explicit Model(uint32_t n) : where(n), armed(n, false) {}
  void cancel(uint32_t id) {
    if (armed[id]) by_deadline.erase(where[id]);
    armed[id] = false;
  }
  void schedule(uint32_t id, uint64_t deadline) {
    cancel(id);
    where[id] = by_deadline.emplace(deadline, id);
    armed[id] = true;
  }
};

TEST(TimerWheelTest, RandomOperationsMatchAReferenceModel) {
  constexpr uint32_t kIds = 300;
  constexpr uint64_t kResolution = 7;  // not a power of two, to exercise the rounding
  std::mt19937_64 rng(12345);
  auto below = [&](uint64_t n) { return rng() % n; };
  uint64_t now = 1000;
  TimerWheel wheel(kIds, kResolution, 32, now);  // 224 ns a revolution
  Model model(kIds);
  auto random_deadline = [&] {
    const uint64_t ahead = below(4) == 0 ? below(3000) : below(300);
    return below(10) == 0 ? now - below(100) : now + ahead;  // some already past
  };
  for (int op = 0; op < 200000; ++op) {
    const uint64_t kind = below(100);
    const auto id = static_cast<uint32_t>(below(kIds));
    if (kind < 40) {
      const uint64_t deadline = random_deadline();
      wheel.schedule(id, deadline);
      model.schedule(id, deadline);
    } else if (kind < 50) {
      wheel.cancel(id);
      model.cancel(id);
    } else {
      now += below(20) == 0 ? below(2000) : below(15);
      // Due: what the model holds at or before now; callbacks may take entries out of it first.
      std::set<uint32_t> due;
      for (auto it = model.by_deadline.begin(); it != model.by_deadline.upper_bound(now); ++it) {
        due.insert(it->second);
      }
      const size_t fired = wheel.advance(now, [&](uint32_t fired_id) {
        ASSERT_EQ(due.erase(fired_id), 1u) << "fired " << fired_id << " not due at " << now;
        EXPECT_FALSE(wheel.scheduled(fired_id));
        model.cancel(fired_id);
        const uint64_t action = below(8);
        const auto other = static_cast<uint32_t>(below(kIds));
        if (action == 0) {  // re-arm itself, maybe already due (then: the next advance)
          const uint64_t deadline = random_deadline();
          wheel.schedule(fired_id, deadline);
          model.schedule(fired_id, deadline);
        } else if (action == 1) {
          const uint64_t deadline = random_deadline();
          wheel.schedule(other, deadline);
          model.schedule(other, deadline);
          due.erase(other);
        } else if (action == 2) {
          wheel.cancel(other);
          model.cancel(other);
          due.erase(other);
        }
      });
      EXPECT_TRUE(due.empty()) << due.size() << " due timers did not fire at " << now;
      (void)fired;
      // Nothing left due but what callbacks armed as due: the hint must not make the loop spin.
      const bool armed_due = !model.by_deadline.empty() && model.by_deadline.begin()->first <= now;
      if (!model.by_deadline.empty() && !armed_due) {
        ASSERT_GT(wheel.next_expiry_hint(), now);
      }
    }
    ASSERT_EQ(wheel.size(), model.by_deadline.size());
    if (model.by_deadline.empty()) {
      ASSERT_EQ(wheel.next_expiry_hint(), UINT64_MAX);
    } else {
      ASSERT_LE(wheel.next_expiry_hint(), model.by_deadline.begin()->first);
    }
    if (op % 1000 == 0) {
      for (uint32_t i = 0; i < kIds; ++i) {
        ASSERT_EQ(wheel.scheduled(i), model.armed[i]);
        if (model.armed[i]) {
          ASSERT_EQ(wheel.deadline(i), model.where[i]->first);
        }
      }
    }
  }
}

TEST(TimerWheelTest, HundredThousandIdleConnections) {
  // The worker's shape: 10 ms slots, 4096 of them, 5-minute deadlines, 200 ms ticks.
  constexpr uint32_t kConns = 100000;
  constexpr uint64_t kMs = 1'000'000;
  const uint64_t start = 12345 * kMs + 678;
  TimerWheel wheel(kConns, 10 * kMs, 4096, start);
  std::mt19937_64 rng(7);
  for (uint32_t id = 0; id < kConns; ++id) wheel.schedule(id, start + 1 + rng() % (300'000 * kMs));
  EXPECT_EQ(wheel.size(), kConns);
  EXPECT_GT(wheel.next_expiry_hint(), start);
  std::vector<int> times_fired(kConns, 0);
  size_t total = 0;
  for (uint64_t now = start; now <= start + 301'000 * kMs; now += 200 * kMs) {
    total += wheel.advance(now, [&](uint32_t id) {
      ++times_fired[id];
      EXPECT_LE(wheel.deadline(id), now);
      EXPECT_GT(wheel.deadline(id) + 200 * kMs, now) << "late";
    });
    if (wheel.size() > 0) {
      EXPECT_GT(wheel.next_expiry_hint(), now);
    }
  }
  EXPECT_EQ(total, kConns);
  EXPECT_EQ(wheel.size(), 0u);
  for (uint32_t id = 0; id < kConns; ++id) ASSERT_EQ(times_fired[id], 1) << id;
}

TEST(TimerWheelTest, NextExpiryHint) {
  TimerWheel wheel(4, 10, 8, 1000);
  EXPECT_EQ(wheel.next_expiry_hint(), UINT64_MAX);
  wheel.schedule(0, 1555);  // many revolutions ahead
  EXPECT_GT(wheel.next_expiry_hint(), 1000u);
  EXPECT_LE(wheel.next_expiry_hint(), 1555u);
  wheel.schedule(1, 1003);
  EXPECT_LE(wheel.next_expiry_hint(), 1003u);
  wheel.cancel(1);
  wheel.cancel(0);
  EXPECT_EQ(wheel.next_expiry_hint(), UINT64_MAX);
  wheel.schedule(2, 900);  // in the past: due now
  EXPECT_LE(wheel.next_expiry_hint(), 1000u);
  EXPECT_EQ(advance_to(wheel, 1000), std::vector<uint32_t>{2});
}

}  // namespace
}  // namespace ringlb::worker
