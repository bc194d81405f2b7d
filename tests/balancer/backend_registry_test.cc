// BackendRegistry: ids are recycled once no snapshot names them, never while one does.
#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "balancer/snapshot.h"

namespace ringlb::balancer {
namespace {

TEST(BackendRegistry, InterningTheSameBackendTwiceGivesOneIdAndTwoReferences) {
  BackendRegistry r;
  const int32_t a = r.intern(0, "10.0.0.1:80");
  ASSERT_GE(a, 0);
  EXPECT_EQ(r.intern(0, "10.0.0.1:80"), a);
  EXPECT_NE(r.intern(1, "10.0.0.1:80"), a);  // another cluster: another backend
  r.release(static_cast<uint32_t>(a));
  EXPECT_TRUE(r.live(static_cast<uint32_t>(a)));  // one reference left
  EXPECT_EQ(r.name(static_cast<uint32_t>(a)), "10.0.0.1:80");
  r.release(static_cast<uint32_t>(a));
  EXPECT_FALSE(r.live(static_cast<uint32_t>(a)));
}

TEST(BackendRegistry, AFreedIdIsClearedAndReused) {
  BackendRegistry r;
  std::vector<uint32_t> freed;
  r.set_on_free([&](uint32_t id) { freed.push_back(id); });
  const uint32_t a = static_cast<uint32_t>(r.intern(0, "a:1"));
  r.state(a).active.store(3);
  r.state(a).up.store(0);
  r.release(a);
  EXPECT_EQ(freed, std::vector<uint32_t>{a});
  EXPECT_EQ(r.live_count(), 0u);
  EXPECT_TRUE(r.live_backends().empty());
  const uint32_t b = static_cast<uint32_t>(r.intern(0, "b:2"));
  EXPECT_EQ(b, a);  // from the free list
  EXPECT_EQ(r.name(b), "b:2");
  EXPECT_EQ(r.state(b).active.load(), 0);
  EXPECT_EQ(r.state(b).up.load(), 1);
  EXPECT_EQ(r.size(), 1u);
}

TEST(BackendRegistry, ManyMoreBackendsThanCapacityOverTimeFit) {
  BackendRegistry r;
  for (uint32_t i = 0; i < 5 * BackendRegistry::kCapacity; ++i) {
    const int32_t id = r.intern(0, "backend-" + std::to_string(i));
    ASSERT_GE(id, 0) << i;
    r.release(static_cast<uint32_t>(id));
  }
  EXPECT_EQ(r.size(), 1u);
}

TEST(BackendRegistry, FullWhenEveryIdIsLive) {
  BackendRegistry r;
  for (uint32_t i = 0; i < BackendRegistry::kCapacity; ++i) ASSERT_GE(r.intern(0, std::to_string(i)), 0);
  EXPECT_EQ(r.intern(0, "one more"), -1);
  r.release(7);
  EXPECT_EQ(r.intern(0, "one more"), 7);
}

// Snapshots as SharedState makes them: the deleter gives the ids back.
std::shared_ptr<Snapshot> snapshot_of(BackendRegistry* r, const std::vector<std::string>& names) {
  std::shared_ptr<Snapshot> s(new Snapshot, [r](Snapshot* p) {
    release_backends(p, r);
    delete p;
  });
  for (const std::string& n : names) s->backends.push_back(BackendSpec{.name = n});
  EXPECT_EQ(finish_snapshot(s.get(), r, 65537), "");
  return s;
}

TEST(BackendRegistry, NeverReusedWhileAnySnapshotNamesIt) {
  BackendRegistry r;
  std::set<uint32_t> freed;
  r.set_on_free([&](uint32_t id) { freed.insert(id); });
  auto v1 = snapshot_of(&r, {"keep", "gone"});
  const uint32_t keep = v1->backends[0].id, gone = v1->backends[1].id;
  r.state(keep).up.store(0);  // health state, kept across the reload
  std::shared_ptr<const Snapshot> held_by_a_connection = v1;
  auto v2 = snapshot_of(&r, {"keep", "new"});
  EXPECT_EQ(v2->backends[0].id, keep);
  EXPECT_NE(v2->backends[1].id, gone);
  v1.reset();  // the holder moved on, a connection still holds v1
  EXPECT_TRUE(r.live(gone));
  auto v3 = snapshot_of(&r, {"keep", "newer"});
  EXPECT_NE(v3->backends[1].id, gone);
  EXPECT_TRUE(freed.empty());
  held_by_a_connection.reset();  // the last snapshot naming "gone"
  EXPECT_EQ(freed, std::set<uint32_t>{gone});
  EXPECT_TRUE(r.live(keep));
  EXPECT_EQ(r.state(keep).up.load(), 0);
  v2.reset();  // "new" goes; "keep" is still in v3
  EXPECT_TRUE(r.live(keep));
  EXPECT_EQ(freed.size(), 2u);
  auto v4 = snapshot_of(&r, {"keep", "newest"});
  EXPECT_TRUE(freed.count(v4->backends[1].id));  // a recycled id
}

}  // namespace
}  // namespace ringlb::balancer
