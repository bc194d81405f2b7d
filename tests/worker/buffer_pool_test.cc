// The buffer pool's accounting and its first-come-first-served waiters, without a ring.
#include "server/worker/buffer_pool.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

namespace ringlb::worker {
namespace {


auto everyone = [](FlowRef) { return true; };

TEST(BufferPool, BuffersGoBackToTheRingWhenNobodyWaits) {
  BufferPool pool(2);
  pool.took_from_ring();
  pool.took_from_ring();
  EXPECT_EQ(pool.in_ring(), 0u);
  EXPECT_EQ(pool.in_use(), 2u);
  EXPECT_FALSE(pool.release(everyone).to_waiter);
  EXPECT_EQ(pool.in_ring(), 1u);
  EXPECT_EQ(pool.in_use(), 1u);
}

TEST(BufferPool, AFreedBufferGoesToTheOldestWaiterFirst) {
  BufferPool pool(1);
  pool.took_from_ring();
  ASSERT_TRUE(pool.wait({1, 0, 0}));
  ASSERT_TRUE(pool.wait({2, 1, 0}));
  ASSERT_TRUE(pool.wait({3, 0, 0}));
  for (uint32_t expected : {1u, 2u, 3u}) {
    const BufferPool::Release r = pool.release(everyone);
    ASSERT_TRUE(r.to_waiter);
    EXPECT_EQ(r.waiter.conn, expected);
    EXPECT_EQ(pool.in_use(), 1u) << "a granted buffer stays in use";
    EXPECT_EQ(pool.in_ring(), 0u) << "a granted buffer never passes through the ring";
  }
  EXPECT_FALSE(pool.release(everyone).to_waiter);
  EXPECT_EQ(pool.in_ring(), 1u);
}

TEST(BufferPool, WaitersThatLeftAreSkipped) {
  BufferPool pool(1);
  pool.took_from_ring();
  pool.wait({1, 0, 0});
  pool.wait({2, 0, 7});
  pool.wait({3, 0, 0});
  const std::set<uint32_t> gone = {1, 3};
  auto wants = [&](FlowRef r) { return gone.count(r.conn) == 0 && r.gen == 7; };
  BufferPool::Release r = pool.release(wants);
  ASSERT_TRUE(r.to_waiter);
  EXPECT_EQ(r.waiter.conn, 2u);
  EXPECT_EQ(r.waiter.gen, 7);
  r = pool.release(wants);  // 3 left too: the buffer goes back to the ring
  EXPECT_FALSE(r.to_waiter);
  EXPECT_EQ(pool.queued(), 0u);
}

TEST(BufferPool, ARecvThatRacedARecycleRetriesInsteadOfWaiting) {
  BufferPool pool(1);
  pool.took_from_ring();
  pool.release(everyone);  // back in the ring while a recv was on its way with -ENOBUFS
  EXPECT_FALSE(pool.wait({5, 0, 0}));
  EXPECT_EQ(pool.queued(), 0u);
}

TEST(BufferPool, OnceSomeoneWaitsLaterFlowsQueueBehindEvenIfTheRingLooksFull) {
  BufferPool pool(2);
  pool.took_from_ring();
  pool.took_from_ring();
  ASSERT_TRUE(pool.wait({1, 0, 0}));
  ASSERT_TRUE(pool.wait({2, 0, 0}));
  EXPECT_EQ(pool.release(everyone).waiter.conn, 1u);
  EXPECT_EQ(pool.release(everyone).waiter.conn, 2u);
}

// Many flows competing for few buffers: each waiter is served in the order it queued, none
// starves, and every buffer is accounted for at the end.
TEST(BufferPool, NoWaiterStarves) {
  constexpr uint32_t kBuffers = 4;
  BufferPool pool(kBuffers);
  for (uint32_t i = 0; i < kBuffers; ++i) pool.took_from_ring();
  std::vector<uint32_t> order;
  for (uint32_t c = 0; c < 100; ++c) ASSERT_TRUE(pool.wait({c, 0, 0}));
  uint32_t held = kBuffers;
  while (pool.queued() > 0) {
    const BufferPool::Release r = pool.release(everyone);
    ASSERT_TRUE(r.to_waiter);
    order.push_back(r.waiter.conn);
  }
  for (uint32_t c = 0; c < 100; ++c) ASSERT_EQ(order[c], c);
  while (held-- > 0) pool.release(everyone);
  EXPECT_EQ(pool.in_ring(), kBuffers);
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(BufferPool, PopTakesTheOldestWaiterThatStillWants) {
  BufferPool pool(1);
  pool.took_from_ring();
  pool.wait({1, 0, 0});
  pool.wait({2, 0, 0});
  FlowRef out;
  ASSERT_TRUE(pool.pop([](FlowRef r) { return r.conn == 2; }, &out));
  EXPECT_EQ(out.conn, 2u);
  EXPECT_FALSE(pool.pop(everyone, &out));
}

}  // namespace
}  // namespace ringlb::worker
