// Bandwidth limits in the pump, through the fake seam: a limited direction's next recv is held
// (no recv in flight, no buffer kept) until its token bucket holds a quantum, the session's timer
// lets it go, each recv asks for at most what the bucket holds, the other direction is not
// slowed, and the time held is counted.
#include <gtest/gtest.h>

#include "tests/proxy/harness.h"

namespace ringlb::proxy::testing {
namespace {

using metrics::CloseReason;

constexpr int kClient = kClientSlot;
constexpr int kBackend = 200;

// The harness's buffers are 1 KiB: at 20480 bytes per second the quantum is a whole buffer,
// refilled in 50 ms.
Config download_limited(uint64_t rate = 20480) {
  Config c = default_config();
  c.listen[0].download_rate = rate;
  return c;
}

std::string bytes(size_t n) { return std::string(n, 'x'); }

uint64_t held_ns(const Harness& h, bool download) { return h.env->stats.rate_limited(0, download).get(); }

TEST(PumpRate, ALimitedRecvIsHeldUntilTheBucketRefillsThenLetGoByTheTimer) {
  Harness h(download_limited());
  const uint32_t id = h.pumping(kClient, kBackend);
  EXPECT_EQ(h.last_on(Request::kRecv, kBackend).spec.len, 1024u) << "a full bucket: a whole buffer";
  h.receive(h.last_on(Request::kRecv, kBackend), bytes(1024));
  const size_t before = h.mark();
  h.complete(h.last(Request::kSendBuffer), 1024);
  EXPECT_FALSE(h.has(Request::kRecv, before)) << "the bucket is empty: no recv from the backend";
  EXPECT_TRUE(h.session(id).rate[kDown].held());
  EXPECT_FALSE(h.session(id).flow[kDown].recv_armed);
  EXPECT_EQ(h.ops->in_use, 0) << "a held flow keeps no buffer";
  EXPECT_EQ(h.ops->timers.at(id), h.env->now_ns + 50 * kMs) << "its timer wakes it when the bucket is full again";

  h.advance(49 * kMs);
  EXPECT_FALSE(h.has(Request::kRecv, before)) << "not before";
  h.advance(1 * kMs);
  ASSERT_TRUE(h.has(Request::kRecv, before));
  EXPECT_EQ(h.last(Request::kRecv).slot, kBackend);
  EXPECT_EQ(h.last(Request::kRecv).spec.len, 1024u);
  EXPECT_FALSE(h.session(id).rate[kDown].held());
  EXPECT_EQ(held_ns(h, true), 50 * kMs) << "ringlb_rate_limited_seconds_total{direction=download}";
  EXPECT_EQ(held_ns(h, false), 0u);
  EXPECT_EQ(h.ops->timers.at(id), h.session(id).last_active_ns + to_ns(h.config.idle_timeout))
      << "back to its idle deadline";
}

// The upload too: its hold must re-arm the session's timer in the pump phase. (Once the phases
// outgrew 8 values, the phase's bits overlapped the upload-held bit of the timer's key, so an
// upload hold never armed the timer and the flow stalled for good: bandwidth_test hung.)
TEST(PumpRate, AHeldUploadIsLetGoByTheTimerAsWell) {
  Config c = default_config();
  c.listen[0].upload_rate = 20480;
  Harness h(c);
  const uint32_t id = h.pumping(kClient, kBackend);
  h.receive(h.last_on(Request::kRecv, kClient), bytes(1024));
  const size_t before = h.mark();
  h.complete(h.last(Request::kSendBuffer), 1024);
  EXPECT_TRUE(h.session(id).rate[kUp].held());
  EXPECT_FALSE(h.has(Request::kRecv, before));
  EXPECT_EQ(h.ops->timers.at(id), h.env->now_ns + 50 * kMs) << "its timer wakes it when the bucket is full again";
  h.advance(50 * kMs);
  ASSERT_TRUE(h.has(Request::kRecv, before));
  EXPECT_EQ(h.last(Request::kRecv).slot, kClient);
  EXPECT_EQ(held_ns(h, false), 50 * kMs) << "ringlb_rate_limited_seconds_total{direction=upload}";
}

TEST(PumpRate, TheOtherDirectionIsNotSlowed) {
  Harness h(download_limited());
  h.pumping(kClient, kBackend);
  h.receive(h.last_on(Request::kRecv, kBackend), bytes(1024));
  h.complete(h.last(Request::kSendBuffer), 1024);  // download held from here
  for (int i = 0; i < 10; ++i) {
    const Request up = h.last_on(Request::kRecv, kClient);
    EXPECT_EQ(up.spec.len, 1024u);
    h.receive(up, bytes(1024));
    const size_t before = h.mark();
    h.complete(h.last_on(Request::kSendBuffer, kBackend), 1024);
    EXPECT_EQ(h.count(Request::kRecv, before), 1u) << "upload: the next recv at once, round " << i;
  }
  EXPECT_EQ(h.session(0).bytes[kUp], 10240u);
  EXPECT_EQ(held_ns(h, false), 0u);
}

// Below a whole buffer's worth per 50 ms, a recv takes what the bucket holds: 2048 bytes per
// second wakes for 102 bytes (1/20 s), and the recv asks for no more than that.
TEST(PumpRate, ARecvAsksForAtMostWhatTheBucketHolds) {
  Harness h(download_limited(2048));
  const uint32_t id = h.pumping(kClient, kBackend);
  h.receive(h.last_on(Request::kRecv, kBackend), bytes(1000));  // 24 tokens left of 1024
  const size_t before = h.mark();
  h.complete(h.last(Request::kSendBuffer), 1000);
  EXPECT_FALSE(h.has(Request::kRecv, before));
  // 78 tokens short of 102, at 2048 per second: 38,085,938 ns, rounded up.
  EXPECT_EQ(h.ops->timers.at(id), h.env->now_ns + 38'085'938);
  h.advance(38'085'938);
  ASSERT_TRUE(h.has(Request::kRecv, before));
  EXPECT_EQ(h.last(Request::kRecv).spec.len, 102u);
  // It took them all: the next hold is a whole quantum (102 bytes: 49.8 ms).
  h.receive(h.last_on(Request::kRecv, kBackend), bytes(102));
  const size_t again = h.mark();
  h.complete(h.last(Request::kSendBuffer), 102);
  EXPECT_FALSE(h.has(Request::kRecv, again));
  // (A nanosecond less, maybe: the fraction of a token left from the last refill counts.)
  EXPECT_NEAR(static_cast<double>(h.ops->timers.at(id) - h.env->now_ns), 49'804'688.0, 1.0);
}

// --recv multishot: the recv's byte budget is what the bucket holds, so the kernel ends it there.
TEST(PumpRate, AMultishotRecvsBudgetIsWhatTheBucketHolds) {
  Config c = download_limited(2048);
  c.recv_multishot = true;
  c.flow_buffers = 4;
  Harness h(c);
  h.pumping(kClient, kBackend);
  EXPECT_EQ(h.last_on(Request::kRecv, kBackend).spec.budget, 1024u) << "the bucket, below 4 buffers";
  EXPECT_EQ(h.last_on(Request::kRecv, kClient).spec.budget, 4096u) << "upload: unlimited, 4 buffers";
  h.receive(h.last_on(Request::kRecv, kBackend), bytes(1000), /*more=*/true);
  h.receive(h.last_on(Request::kRecv, kBackend), bytes(24));  // the budget spent: it ends
  h.complete(h.last_on(Request::kSendBuffer, kClient), 1000);
  const size_t before = h.mark();
  h.complete(h.last_on(Request::kSendBuffer, kClient), 24);
  EXPECT_FALSE(h.has(Request::kRecv, before)) << "empty bucket: held";
  h.advance(50 * kMs);
  ASSERT_TRUE(h.has(Request::kRecv, before));
  EXPECT_EQ(h.last(Request::kRecv).spec.budget, 102u);
}

// Listener and cluster may both limit a direction: the lower applies, whichever sets it.
TEST(PumpRate, TheLowerOfTheListenersAndTheClustersRateApplies) {
  Config c = default_config();
  c.listen[0].download_rate = 1'000'000;
  c.listen[0].upload_rate = 5000;
  c.clusters[0].download_rate = 20480;
  Harness h(c);
  const uint32_t id = h.pumping(kClient, kBackend);
  EXPECT_EQ(h.session(id).rate[kDown].bucket.rate(), 20480u) << "the cluster's, lower";
  EXPECT_EQ(h.session(id).rate[kUp].bucket.rate(), 5000u) << "the listener's; the cluster has none";

  Config only_cluster = default_config();
  only_cluster.clusters[0].upload_rate = 7000;
  Harness h2(only_cluster);
  const uint32_t other = h2.pumping(kClient, kBackend);
  EXPECT_EQ(h2.session(other).rate[kUp].bucket.rate(), 7000u);
  EXPECT_FALSE(h2.session(other).rate[kDown].bucket.limited());
}

// Closed while held: nothing is left armed, the time held until then is counted, and the slot
// is freed as usual.
TEST(PumpRate, ASessionClosedWhileHeldIsFreedAndItsTimeCounted) {
  Harness h(download_limited());
  const uint32_t id = h.pumping(kClient, kBackend);
  h.receive(h.last_on(Request::kRecv, kBackend), bytes(1024));
  h.complete(h.last(Request::kSendBuffer), 1024);
  ASSERT_TRUE(h.session(id).rate[kDown].held());
  h.advance(20 * kMs);
  h.driver->close_all(CloseReason::k_drain);
  h.complete(h.last_on(Request::kRecv, kClient), -ECANCELED);
  h.complete(h.last_on(Request::kCancelSlot, kClient), 0);
  h.complete(h.last_on(Request::kCancelSlot, kBackend), 0);
  EXPECT_EQ(h.session(id).phase, Phase::kFree);
  EXPECT_EQ(held_ns(h, true), 20 * kMs);
  EXPECT_EQ(h.ops->in_use, 0);
  EXPECT_EQ(h.ops->timers.count(id), 0u);
}

// A buffer granted to a held flow goes back at once: a limited connection holds no buffer while
// it waits. A flow whose send gives its buffer to a waiter queues for the next one before it
// looks at its bucket; by the time one is granted to it, it may be held.
TEST(PumpRate, AHeldFlowGivesAGrantedBufferBack) {
  Harness h(download_limited());
  const uint32_t a = h.pumping(kClient, kBackend);
  const uint32_t b = h.pumping(kClient + 1, kBackend + 1);
  h.receive(h.last_on(Request::kRecv, kBackend), bytes(1024));  // a: its bucket is empty now
  while (h.ops->take_from_ring() >= 0) {
  }
  h.receive(h.last_on(Request::kRecv, kBackend + 1), bytes(1));  // b: -ENOBUFS, it waits
  ASSERT_TRUE(h.session(b).flow[kDown].waiting);
  // a's send frees its buffer: it goes to b, and a queues for the next one.
  h.complete(h.last_on(Request::kSendBuffer, kClient), 1024);
  ASSERT_TRUE(h.session(a).flow[kDown].waiting);
  // b receives into its grant (its bucket empties too) and sends: the buffer goes to a, which is
  // held and gives it back at once, to b, which is held too: back to the ring.
  h.receive(h.last_on(Request::kRecv, kBackend + 1), bytes(1024));
  h.complete(h.last_on(Request::kSendBuffer, kClient + 1), 1024);
  for (uint32_t id : {a, b}) {
    EXPECT_TRUE(h.session(id).rate[kDown].held()) << id;
    EXPECT_EQ(h.session(id).flow[kDown].granted, -1) << id;
    EXPECT_FALSE(h.session(id).flow[kDown].waiting) << id;
  }
  EXPECT_EQ(h.ops->ring_size(), 1u) << "the buffer is back in the ring";
  // And both go on once their buckets refill.
  const size_t before = h.mark();
  h.advance(50 * kMs);
  EXPECT_EQ(h.count(Request::kRecv, before), 2u);
}

}  // namespace
}  // namespace ringlb::proxy::testing
