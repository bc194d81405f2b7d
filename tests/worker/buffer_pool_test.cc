// The buffer pool's accounting and its first-come-first-served waiters, without a ring. (Which
// waiter still wants a buffer is the sessions' business: tests/proxy/buffers_test.cc.)
#include "server/worker/buffer_pool.h"

#include <gtest/gtest.h>

#include <vector>

namespace ringlb::worker {
namespace {

TEST(BufferPool, CountsBuffersTakenAndReturned) {
  BufferPool pool(2);
  pool.took_from_ring();
  pool.took_from_ring();
  EXPECT_EQ(pool.in_ring(), 0u);
  EXPECT_EQ(pool.in_use(), 2u);
  pool.returned_to_ring();
  EXPECT_EQ(pool.in_ring(), 1u);
  EXPECT_EQ(pool.in_use(), 1u);
  EXPECT_EQ(pool.count(), 2u);
}

TEST(BufferPool, WaitersComeOutOldestFirst) {
  BufferPool pool(1);
  pool.took_from_ring();
  ASSERT_TRUE(pool.wait({1, 0, 0}));
  ASSERT_TRUE(pool.wait({2, 1, 0}));
  ASSERT_TRUE(pool.wait({3, 0, 7}));
  FlowRef ref;
  for (uint32_t expected : {1u, 2u, 3u}) {
    ASSERT_TRUE(pool.next_waiter(&ref));
    EXPECT_EQ(ref.id, expected);
  }
  EXPECT_EQ(ref.gen, 7);
  EXPECT_FALSE(pool.next_waiter(&ref));
  EXPECT_EQ(pool.in_use(), 1u) << "handing out waiters moves no buffer";
}

TEST(BufferPool, ARecvThatRacedARecycleRetriesInsteadOfWaiting) {
  BufferPool pool(1);
  pool.took_from_ring();
  pool.returned_to_ring();  // back in the ring while a recv was on its way with -ENOBUFS
  EXPECT_FALSE(pool.wait({5, 0, 0}));
  EXPECT_EQ(pool.queued(), 0u);
}

TEST(BufferPool, OnceSomeoneWaitsLaterFlowsQueueBehindEvenIfTheRingHasBuffers) {
  BufferPool pool(2);
  pool.took_from_ring();
  pool.took_from_ring();
  ASSERT_TRUE(pool.wait({1, 0, 0}));
  pool.returned_to_ring();
  ASSERT_TRUE(pool.wait({2, 0, 0})) << "a newcomer must not overtake the waiter";
  EXPECT_EQ(pool.queued(), 2u);
}

// Many flows for few buffers: served in the order they queued, none starves.
TEST(BufferPool, NoWaiterStarves) {
  BufferPool pool(4);
  for (int i = 0; i < 4; ++i) pool.took_from_ring();
  for (uint32_t c = 0; c < 100; ++c) ASSERT_TRUE(pool.wait({c, 0, 0}));
  std::vector<uint32_t> order;
  FlowRef ref;
  while (pool.next_waiter(&ref)) order.push_back(ref.id);
  ASSERT_EQ(order.size(), 100u);
  for (uint32_t c = 0; c < 100; ++c) ASSERT_EQ(order[c], c);
}

}  // namespace
}  // namespace ringlb::worker
