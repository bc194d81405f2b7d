#include "balancer/picker.h"

#include <gtest/gtest.h>

#include <cmath>

namespace ringlb::balancer {
namespace {

struct Fixture {
  BackendRegistry registry;
  Snapshot snapshot;
  Fixture(Policy policy, std::vector<uint32_t> weights, std::vector<bool> backup = {}) {
    snapshot.policy = policy;
    for (size_t i = 0; i < weights.size(); ++i) {
      BackendSpec b;
      b.name = "backend-" + std::to_string(i) + "-" + std::to_string(reinterpret_cast<uintptr_t>(this));
      b.weight = weights[i];
      b.backup = i < backup.size() && backup[i];
      snapshot.backends.push_back(b);
    }
    EXPECT_EQ(finish_snapshot(&snapshot, &registry, 65537), "");
  }
  BackendState& state(size_t i) { return *snapshot.backends[i].state; }
};

TEST(Picker, RoundRobinFiveOneOne) {
  Fixture f(Policy::kRoundRobin, {5, 1, 1});
  Picker p(f.snapshot, 0, 1);
  std::string s;
  for (int i = 0; i < 7; ++i) s += static_cast<char>('a' + p.pick(0, 0));
  EXPECT_EQ(s, "aabacaa");
}

TEST(Picker, LeastConnPicksLeastLoadedAndRotatesTies) {
  Fixture f(Policy::kLeastConn, {1, 1, 1});
  Picker p(f.snapshot, 0, 1);
  f.state(0).active = 5;
  f.state(1).active = 2;
  f.state(2).active = 7;
  EXPECT_EQ(p.pick(0, 0), 1);
  f.state(0).active = 3;
  f.state(1).active = 3;
  f.state(2).active = 3;
  std::string s;
  for (int i = 0; i < 6; ++i) s += static_cast<char>('a' + p.pick(0, 0));
  EXPECT_EQ(s, "cabcab");  // ties in turn after the last pick (b), not always the first
  // Weights: 4 connections on a weight-4 backend count as less load than 2 on weight 1.
  Fixture w(Policy::kLeastConn, {4, 1});
  Picker pw(w.snapshot, 0, 1);
  w.state(0).active = 4;
  w.state(1).active = 2;
  EXPECT_EQ(pw.pick(0, 0), 0);
}

TEST(Picker, Random2WithinStatisticalBounds) {
  Fixture f(Policy::kRandom2, {1, 1, 2});
  Picker p(f.snapshot, 0, 12345);
  constexpr int kPicks = 100000;
  std::vector<int> hits(3, 0);
  for (int i = 0; i < kPicks; ++i) hits[static_cast<size_t>(p.pick(0, 0))]++;
  // Equal load: the choice is the first weighted draw: 25% / 25% / 50%. Five standard deviations.
  const double expected[] = {0.25, 0.25, 0.5};
  for (size_t i = 0; i < 3; ++i) {
    const double sd = std::sqrt(kPicks * expected[i] * (1 - expected[i]));
    EXPECT_NEAR(hits[i], kPicks * expected[i], 5 * sd) << "backend " << i;
  }
  // Unequal load: the less loaded of the two draws wins, so the busy backend is picked only
  // when drawn twice... which cannot happen (draws are distinct): never.
  f.state(2).active = 100;
  for (int i = 0; i < 1000; ++i) EXPECT_NE(p.pick(0, 0), 2);
}

TEST(Picker, MaglevSameKeySameBackendAndFallback) {
  Fixture f(Policy::kMaglev, {1, 1, 1});
  Picker p1(f.snapshot, 0, 1), p2(f.snapshot, 1, 99);
  for (uint64_t key = 0; key < 1000; ++key) {
    const uint64_t h = key * 0x9E3779B97F4A7C15ULL;
    const int a = p1.pick(h, 0);
    EXPECT_EQ(a, p1.pick(h, 0));
    EXPECT_EQ(a, p2.pick(h, 0)) << "two pickers must agree";
  }
  // A down backend's keys move; the others' keys stay.
  std::vector<int> before;
  for (uint64_t key = 0; key < 1000; ++key) before.push_back(p1.pick(key * 0x9E3779B97F4A7C15ULL, 0));
  f.state(1).up = 0;
  for (uint64_t key = 0; key < 1000; ++key) {
    const int now = p1.pick(key * 0x9E3779B97F4A7C15ULL, 0);
    EXPECT_NE(now, 1);
    if (before[key] != 1) {
      EXPECT_EQ(now, before[key]);
    }
  }
}

TEST(Picker, DownFullTriedAndBackup) {
  Fixture f(Policy::kRoundRobin, {1, 1, 1}, {false, false, true});
  f.snapshot.backends[0].max_connections = 2;
  Picker p(f.snapshot, 0, 1);
  f.state(0).active = 2;  // full
  for (int i = 0; i < 4; ++i) EXPECT_EQ(p.pick(0, 0), 1);
  EXPECT_EQ(p.pick(0, 1ULL << 1), 2) << "backup once every primary was tried or full";
  f.state(1).up = 0;
  EXPECT_EQ(p.pick(0, 0), 2) << "backup when no primary can take it";
  f.state(2).up = 0;
  EXPECT_EQ(p.pick(0, 0), -1);
}

TEST(Picker, CanTakeAndWaitingHelpsTellWhetherToQueue) {
  Fixture f(Policy::kRoundRobin, {1, 1});
  Picker p(f.snapshot, 0, 1);
  f.snapshot.backends[0].max_connections = 1;
  f.snapshot.backends[1].max_connections = 1;
  EXPECT_TRUE(p.can_take(0));
  f.state(0).active = 1;
  EXPECT_TRUE(p.can_take(0));  // the second still has room
  f.state(1).active = 1;
  EXPECT_FALSE(p.can_take(0));
  EXPECT_EQ(p.pick(0, 0), -1);
  EXPECT_TRUE(p.waiting_helps(0));  // both up and full: a queued client will get a turn
  f.state(1).up = 0;
  EXPECT_TRUE(p.waiting_helps(0));  // one full is enough
  f.state(0).up = 0;
  EXPECT_FALSE(p.waiting_helps(0));  // all down: waiting does not help
  f.state(0).up = 1;
  EXPECT_FALSE(p.waiting_helps(0b01));  // the full one was already tried
  f.state(0).active = 0;
  EXPECT_TRUE(p.can_take(0));
  EXPECT_TRUE(p.waiting_helps(0));  // room again (freed by another worker after a failed pick)
  EXPECT_EQ(p.pick(0, 0), 0);
}

// Weight 0 (a drained backend in the config file) gets no new clients under any policy, and a
// pool with every backend drained answers -1 rather than dividing by its zero total weight.
TEST(Picker, DrainedBackendsGetNothing) {
  for (Policy policy : {Policy::kRoundRobin, Policy::kLeastConn, Policy::kRandom2, Policy::kMaglev}) {
    Fixture some(policy, {0, 2, 0});
    Picker p(some.snapshot, 0, 7);
    for (uint64_t key = 0; key < 200; ++key) EXPECT_EQ(p.pick(key * 7919, 0), 1) << policy_name(policy);
    Fixture all(policy, {0, 0});
    Picker none(all.snapshot, 1, 7);
    for (uint64_t key = 0; key < 20; ++key) EXPECT_EQ(none.pick(key, 0), -1) << policy_name(policy);
    EXPECT_FALSE(none.can_take(0));
  }
}

TEST(Snapshot, RejectsNonPrimeMaglevSize) {
  BackendRegistry r;
  Snapshot s;
  s.policy = Policy::kMaglev;
  BackendSpec b;
  b.name = "x";
  s.backends.push_back(b);
  EXPECT_NE(finish_snapshot(&s, &r, 65536).find("not prime"), std::string::npos);
}

TEST(Snapshot, ABackendIsAnAddressInOneCluster) {
  BackendRegistry r;
  EXPECT_EQ(r.intern_cluster("web"), 0);
  EXPECT_EQ(r.intern_cluster("api"), 1);
  EXPECT_EQ(r.intern_cluster("web"), 0);
  EXPECT_EQ(r.clusters(), 2u);
  const int32_t in_web = r.intern(0, "10.0.0.1:80");
  const int32_t in_api = r.intern(1, "10.0.0.1:80");
  EXPECT_NE(in_web, in_api);
  EXPECT_EQ(r.intern(0, "10.0.0.1:80"), in_web);
  EXPECT_EQ(r.cluster_of(static_cast<uint32_t>(in_api)), 1u);
  EXPECT_EQ(r.cluster_name(1), "api");
}

TEST(Snapshot, SameSnapshotSeesEveryChangeButTheVersion) {
  BackendRegistry r;
  auto make = [&](uint64_t version) {
    Snapshot s;
    s.version = version;
    s.policy = Policy::kRoundRobin;
    BackendSpec b;
    b.name = "x";
    s.backends.push_back(b);
    EXPECT_EQ(finish_snapshot(&s, &r, 65537), "");
    return s;
  };
  const Snapshot a = make(1);
  EXPECT_TRUE(same_snapshot(a, make(2)));
  Snapshot b = make(2);
  b.policy = Policy::kMaglev;
  EXPECT_FALSE(same_snapshot(a, b));
  b = make(2);
  b.backends[0].weight = 2;
  EXPECT_FALSE(same_snapshot(a, b));
  b = make(2);
  b.connect_timeout_ms = 1;
  EXPECT_FALSE(same_snapshot(a, b));
  b = make(2);
  b.backends.push_back(b.backends[0]);
  EXPECT_FALSE(same_snapshot(a, b));
}

}  // namespace
}  // namespace ringlb::balancer
