// The driver's own rules through the fake seam: in-flight counting and freeing, stale
// completions, the close reason and record set once, reload drains, lost completions.
#include <gtest/gtest.h>

#include "server/access_log/access_log.h"
#include "tests/proxy/harness.h"

namespace ringlb::proxy::testing {
namespace {

using metrics::CloseReason;

TEST(Driver, EveryCompletionOfAClosedSessionIsWaitedForBeforeItsSlotIsReused) {
  Harness h(default_config(), 1);
  const uint32_t id = h.pumping(100, 200);
  h.driver->close_all(CloseReason::k_drain);
  EXPECT_EQ(h.session(id).inflight, 4u) << "two recvs and two cancels";
  h.complete(h.last_on(Request::kRecv, 100), -ECANCELED);
  h.complete(h.last_on(Request::kRecv, 200), -ECANCELED);
  h.complete(h.last_on(Request::kCancelSlot, 100), 0);
  EXPECT_EQ(h.driver->live(), 1u);
  h.complete(h.last_on(Request::kCancelSlot, 200), 0);
  EXPECT_EQ(h.driver->live(), 0u);
  EXPECT_EQ(h.closed(CloseReason::k_drain), 1u);
  EXPECT_EQ(h.env->stats.open_slots.get(), 0u) << "both slots closed";
}

TEST(Driver, ACompletionForAnEarlierSessionOfTheSlotIsDroppedAndItsBufferGivenBack) {
  Harness h(default_config(), 1);
  h.pumping(100, 200);
  const Request old_recv = h.last_on(Request::kRecv, 100);
  h.driver->close_all(CloseReason::k_drain);
  h.driver->on_completions_lost();
  h.advance(10 * kSec);  // the grace period after lost completions: freed anyway
  EXPECT_EQ(h.driver->live(), 0u);
  const uint32_t next = h.open(101);
  EXPECT_EQ(next, 0u) << "the same slot, a new generation";
  h.receive(old_recv, "late");
  EXPECT_EQ(h.env->stats.stale_completions.get(), 1u);
  EXPECT_EQ(h.ops->in_use, 0) << "its buffer went back";
  EXPECT_EQ(h.session(next).phase, Phase::kConnect) << "the new session is untouched";
}

TEST(Driver, AStaleSocketIsClosed) {
  Harness h(default_config(), 1);
  h.open(100);
  const Request socket = h.last(Request::kSocket);
  h.driver->close_all(CloseReason::k_drain);
  h.driver->on_completions_lost();
  h.advance(10 * kSec);
  h.open(101);
  const size_t from = h.mark();
  h.give_socket(socket, 300);
  ASSERT_EQ(h.since(from).size(), 1u);
  EXPECT_EQ(h.since(from)[0].kind, Request::kClose);
  EXPECT_EQ(h.since(from)[0].slot, 300);
}

TEST(Driver, ASocketThatArrivesWhileClosingIsClosedWithTheSession) {
  Harness h;
  h.open(100);
  h.driver->close_all(CloseReason::k_drain);
  h.give_socket(h.last(Request::kSocket), 300);
  h.complete(h.last(Request::kCancelSlot), 0);
  EXPECT_EQ(h.last_on(Request::kClose, 300).slot, 300);
  EXPECT_EQ(h.env->stats.open_slots.get(), 0u);
}

TEST(Driver, TheCloseReasonAndRecordAreSetOnceAtTheFirstClose) {
  Harness h;
  auto opened = AccessLog::open("/dev/null", nullptr);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  std::unique_ptr<AccessLog> log = std::move(opened.value());
  h.shared->access_log = log.get();
  const uint32_t id = h.pumping(100, 200);
  h.complete(h.last_on(Request::kRecv, 200), -ECONNRESET);
  h.driver->close_all(CloseReason::k_drain);  // already closing: no second reason
  h.complete(h.last_on(Request::kRecv, 100), -ECANCELED);
  h.complete(h.last_on(Request::kCancelSlot, 100), 0);
  h.complete(h.last_on(Request::kCancelSlot, 200), 0);
  EXPECT_EQ(h.session(id).phase, Phase::kFree);
  ASSERT_EQ(h.ops->access_lines.size(), 1u);
  EXPECT_NE(h.ops->access_lines[0].find("close=reset"), std::string::npos) << h.ops->access_lines[0];
  EXPECT_NE(h.ops->access_lines[0].find("backend=127.0.0.1:9001"), std::string::npos);
  EXPECT_NE(h.ops->access_lines[0].find("cluster=web"), std::string::npos);
  EXPECT_EQ(h.closed(CloseReason::k_reset), 1u);
  EXPECT_EQ(h.closed(CloseReason::k_drain), 0u);
  h.shared->access_log = nullptr;
}

TEST(Driver, TheMaxConnectionDurationClosesEvenABusySession) {
  Config c = default_config();
  c.listen[0].max_connection_duration = Millis(30'000);
  Harness h(c);
  const uint32_t id = h.pumping(100, 200);
  for (int i = 0; i < 3; ++i) {
    h.advance(10 * kSec);
    if (h.session(id).phase != Phase::kPump) break;
    h.receive(h.last_on(Request::kRecv, 100), "busy");
    h.complete(h.last(Request::kSendBuffer), 4);
  }
  EXPECT_EQ(h.session(id).closed_as, CloseReason::k_max_duration);
}

TEST(Driver, AReloadThatRemovesABackendDrainsItsSessionsAtTheDrainDeadline) {
  Config c = default_config();
  c.drain_timeout = Millis(5000);
  Harness h(c);
  const uint32_t on_first = h.pumping(100, 200);  // 127.0.0.1:9001
  const uint32_t on_second = h.pumping(101, 201);  // 127.0.0.1:9002
  Config next = c;
  next.clusters[0].backends.erase(next.clusters[0].backends.begin());
  ASSERT_TRUE(publish_config(next, 2, h.shared.get()).ok());
  h.driver->on_tick();
  EXPECT_NE(h.session(on_first).deadline_ns, 0u);
  EXPECT_EQ(h.session(on_second).deadline_ns, 0u);
  h.advance(5 * kSec);
  EXPECT_EQ(h.session(on_first).closed_as, CloseReason::k_drain);
  EXPECT_EQ(h.session(on_second).phase, Phase::kPump);
  // New sessions pick from the new snapshot only.
  h.open(102);
  h.give_socket(h.last(Request::kSocket), 202);
  EXPECT_EQ(h.last(Request::kConnect).to, "127.0.0.1:9002");
}

TEST(Driver, AReloadThatRemovesTheListenerDrainsItsSessions) {
  Config c = default_config();
  c.drain_timeout = Millis(2000);
  Harness h(c);
  const uint32_t id = h.pumping(100, 200);
  ListenerPolicies removed = *h.shared->policies;
  removed.version = 2;
  removed.listeners[0].removed = true;
  {
    std::lock_guard<std::mutex> lock(h.shared->policies_mu);
    h.shared->policies = std::make_shared<const ListenerPolicies>(removed);
  }
  h.shared->policies_version.store(2);
  h.driver->on_tick();
  h.advance(2 * kSec);
  EXPECT_EQ(h.session(id).closed_as, CloseReason::k_drain);
}

TEST(Driver, AfterLostCompletionsAClosingSessionIsFreedAfterItsGracePeriod) {
  Harness h;
  const uint32_t id = h.pumping(100, 200);
  h.driver->on_completions_lost();
  h.driver->close_all(CloseReason::k_drain);
  h.advance(9 * kSec);
  EXPECT_EQ(h.session(id).phase, Phase::kClosing);
  h.advance(1 * kSec);
  EXPECT_EQ(h.session(id).phase, Phase::kFree);
  EXPECT_EQ(h.driver->live(), 0u);
}

TEST(Driver, AGrantToASessionThatClosedMeanwhileGoesToTheNextWaiter) {
  Config c = default_config();
  c.buffers_per_worker = 1;
  Harness h(c, 4);
  h.pumping(100, 200);
  const uint32_t gone = h.pumping(101, 201);
  const uint32_t waiting = h.pumping(102, 202);
  h.receive(h.last_on(Request::kRecv, 100), "x");  // the one buffer
  h.receive(h.last_on(Request::kRecv, 101), "y");  // waits
  h.receive(h.last_on(Request::kRecv, 102), "z");  // waits behind it
  h.complete(h.last_on(Request::kRecv, 201), -ECONNRESET);  // the first waiter goes away
  EXPECT_EQ(h.session(gone).closed_as, CloseReason::k_reset);
  h.complete(h.last_on(Request::kSendBuffer, 200), 1);
  EXPECT_GE(h.last_on(Request::kRecv, 102).spec.into, 0) << "skipped the closed one";
  EXPECT_TRUE(h.session(waiting).flow[kUp].recv_armed);
}

TEST(Driver, TheTickGivesWaitersBuffersTheRingHasAgain) {
  Config c = default_config();
  c.buffers_per_worker = 1;
  Harness h(c, 4);
  h.pumping(100, 200);
  const uint32_t id = h.pumping(101, 201);
  h.receive(h.last_on(Request::kRecv, 100), "x");
  h.receive(h.last_on(Request::kRecv, 101), "y");  // waits
  // The buffer came back to the ring without passing the waiters (as after lost completions).
  h.ops->recycle(h.last(Request::kSendBuffer).buf);
  ++h.ops->in_use;
  const size_t from = h.mark();
  h.driver->on_tick();
  EXPECT_EQ(h.count(Request::kRecv, from), 1u);
  EXPECT_FALSE(h.session(id).flow[kUp].waiting);
}

TEST(Driver, LiveCountsAreSharedWithTheAcceptor) {
  Harness h;
  h.pumping(100, 200);
  h.pumping(101, 201);
  EXPECT_EQ(h.shared->workers[0]->active.load(), 2u);
  EXPECT_EQ(h.env->stats.active.get(), 2u);
  EXPECT_EQ(h.env->stats.received.get(), 2u);
}

}  // namespace
}  // namespace ringlb::proxy::testing
