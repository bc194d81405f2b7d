// The pump through the fake seam: bytes in order both ways, short sends, half-close, back-
// pressure, buffer waits, and every error its recvs and sends can get.
#include <gtest/gtest.h>

#include "tests/proxy/harness.h"

namespace ringlb::proxy::testing {
namespace {

using metrics::CloseReason;

constexpr int kClient = kClientSlot;
constexpr int kBackend = 200;

TEST(Pump, BytesFromTheClientGoToTheBackendThenTheRecvIsArmedAgain) {
  Harness h;
  const uint32_t id = h.pumping(kClient, kBackend);
  h.receive(h.last_on(Request::kRecv, kClient), "hello");
  const Request send = h.last(Request::kSendBuffer);
  EXPECT_EQ(send.slot, kBackend);
  EXPECT_EQ(send.bytes, "hello");
  EXPECT_EQ(h.count(Request::kRecv), 2u) << "one recv per direction until the send is done";
  h.complete(send, 5);
  EXPECT_EQ(h.ops->in_use, 0) << "the buffer went back";
  EXPECT_EQ(h.count(Request::kRecv), 3u);
  EXPECT_EQ(h.session(id).bytes[kUp], 5u);
}

TEST(Pump, AShortSendSendsTheRestInOrder) {
  Harness h;
  h.pumping(kClient, kBackend);
  h.receive(h.last_on(Request::kRecv, kBackend), "0123456789");
  const Request first = h.last(Request::kSendBuffer);
  EXPECT_EQ(first.slot, kClient);
  h.complete(first, 4);
  const Request rest = h.last(Request::kSendBuffer);
  EXPECT_EQ(rest.bytes, "456789");
  EXPECT_EQ(rest.off, 4u);
  EXPECT_EQ(rest.buf, first.buf);
}

TEST(Pump, AFailedSendIsAResetAndGivesTheBuffersBack) {
  Harness h;
  h.pumping(kClient, kBackend);
  h.receive(h.last_on(Request::kRecv, kClient), "abc");
  h.complete(h.last(Request::kSendBuffer), -EPIPE);
  EXPECT_EQ(h.session(0).phase, Phase::kClosing);
  h.complete(h.last_on(Request::kRecv, kBackend), -ECANCELED);
  h.complete(h.last_on(Request::kCancelSlot, kClient), 0);
  h.complete(h.last_on(Request::kCancelSlot, kBackend), 0);
  EXPECT_EQ(h.closed(CloseReason::k_reset), 1u);
  EXPECT_EQ(h.ops->in_use, 0);
}

TEST(Pump, ASendOfZeroBytesIsAnError) {
  Harness h;
  h.pumping(kClient, kBackend);
  h.receive(h.last_on(Request::kRecv, kClient), "abc");
  h.complete(h.last(Request::kSendBuffer), 0);
  EXPECT_EQ(h.session(0).closed_as, CloseReason::k_error);
}

TEST(Pump, ARecvErrorClosesBothSides) {
  Harness h;
  h.pumping(kClient, kBackend);
  h.complete(h.last_on(Request::kRecv, kBackend), -ECONNRESET);
  EXPECT_EQ(h.session(0).closed_as, CloseReason::k_reset);
  EXPECT_EQ(h.last_on(Request::kCancelSlot, kClient).slot, kClient) << "the client's recv is cancelled";
}

TEST(Pump, AFinIsPassedOnOnlyAfterTheBytesBeforeIt) {
  Harness h;
  const uint32_t id = h.pumping(kClient, kBackend);
  h.receive(h.last_on(Request::kRecv, kClient), "last words");
  const Request send = h.last(Request::kSendBuffer);
  // The recv after it (armed once the send is done) sees FIN meanwhile: here the send is still
  // out, so the FIN arrives on a recv armed later; simulate the order recv-data, send, recv-EOF.
  h.complete(send, static_cast<int>(send.len));
  h.receive(h.last_on(Request::kRecv, kClient), "");
  h.end_batch();
  const Request shutdown = h.last(Request::kShutdown);
  EXPECT_EQ(shutdown.slot, kBackend) << "the client's FIN goes to the backend";
  EXPECT_TRUE(h.session(id).flow[kUp].eof);
  EXPECT_EQ(h.session(id).phase, Phase::kPump) << "the other direction keeps flowing";
  h.complete(shutdown, 0);
  h.receive(h.last_on(Request::kRecv, kBackend), "reply");
  EXPECT_EQ(h.last(Request::kSendBuffer).slot, kClient);
}

TEST(Pump, AFinBehindQueuedBytesWaitsForThemToBeSent) {
  Config c = default_config();
  c.flow_buffers = 2;
  c.recv_multishot = true;
  Harness h(c);
  const uint32_t id = h.pumping(kClient, kBackend);
  const Request recv = h.last_on(Request::kRecv, kClient);
  EXPECT_TRUE(recv.spec.multishot);
  h.receive(recv, "abc", true);
  h.receive(recv, "");  // FIN, the multishot's last completion, while "abc" is being sent
  h.end_batch();
  EXPECT_FALSE(h.has(Request::kShutdown)) << "not before abc is out";
  EXPECT_TRUE(h.session(id).flow[kUp].eof_pending);
  h.complete(h.last(Request::kSendBuffer), 3);
  h.end_batch();
  EXPECT_EQ(h.last(Request::kShutdown).slot, kBackend);
}

TEST(Pump, BothFinsEndTheSessionOnceNothingIsInFlight) {
  Harness h;
  const uint32_t id = h.pumping(kClient, kBackend);
  h.receive(h.last_on(Request::kRecv, kClient), "");
  h.receive(h.last_on(Request::kRecv, kBackend), "");
  EXPECT_EQ(h.session(id).phase, Phase::kPump) << "the first FIN's shutdown is still in flight";
  h.end_batch();
  h.complete(h.last(Request::kShutdown), 0);
  EXPECT_EQ(h.session(id).phase, Phase::kFree);
  EXPECT_EQ(h.closed(CloseReason::k_client_eof), 1u) << "named after the first FIN";
  EXPECT_EQ(h.last_on(Request::kClose, kClient).slot, kClient);
  EXPECT_EQ(h.last_on(Request::kClose, kBackend).slot, kBackend);
  EXPECT_FALSE(h.has(Request::kCancelSlot)) << "nothing to cancel";
  EXPECT_EQ(h.driver->live(), 0u);
  EXPECT_EQ(h.shared->listener_active[0].load(), 0u);
  EXPECT_EQ(h.shared->clusters[0].get()->backends[0].state->active.load(), 0u);
}

TEST(Pump, AFullChainStopsTheMultishotRecvUntilTheReaderCatchesUp) {
  Config c = default_config();
  c.recv_multishot = true;
  c.flow_buffers = 2;
  Harness h(c);
  h.pumping(kClient, kBackend);
  const Request recv = h.last_on(Request::kRecv, kClient);
  EXPECT_EQ(recv.spec.budget, 2u * c.buffer_size) << "a budget of what the chain can hold";
  h.receive(recv, "one", true);
  EXPECT_FALSE(h.has(Request::kCancel));
  h.receive(recv, "two", true);
  const Request cancel = h.last(Request::kCancel);
  EXPECT_EQ(cancel.target, recv.data) << "the multishot recv is stopped";
  EXPECT_EQ(h.env->stats.recv_stopped.get(), 1u);
  const size_t armed = h.count(Request::kRecv);
  h.complete(recv, -ECANCELED);
  h.complete(cancel, 0);
  EXPECT_EQ(h.count(Request::kRecv), armed) << "not again while the chain is full";
  h.complete(h.last(Request::kSendBuffer), 3);
  EXPECT_EQ(h.last(Request::kSendBuffer).bytes, "two") << "the chain's next buffer, in order";
  EXPECT_EQ(h.count(Request::kRecv), armed + 1) << "room again: armed again";
}

TEST(Pump, AMultishotRecvTheKernelEndedIsArmedAgain) {
  Config c = default_config();
  c.recv_multishot = true;
  c.flow_buffers = 4;
  Harness h(c);
  h.pumping(kClient, kBackend);
  const size_t armed = h.count(Request::kRecv);
  h.receive(h.last_on(Request::kRecv, kClient), "data");  // no MORE: it ended
  EXPECT_EQ(h.count(Request::kRecv), armed + 1);
  EXPECT_EQ(h.env->stats.recv_ended.get(), 1u);
}

TEST(Pump, WithTheRingEmptyAFlowWaitsAndGetsTheNextFreedBufferFirst) {
  Config c = default_config();
  c.buffers_per_worker = 1;
  Harness h(c, 4);
  h.pumping(100, 200);
  h.pumping(101, 201);
  h.receive(h.last_on(Request::kRecv, 100), "x");  // the one buffer
  const size_t from = h.mark();
  h.receive(h.last_on(Request::kRecv, 101), "y");  // -ENOBUFS
  EXPECT_EQ(h.since(from).size(), 0u);
  EXPECT_TRUE(h.session(1).flow[kUp].waiting);
  EXPECT_EQ(h.env->stats.buffer_waits.get(), 1u);
  h.complete(h.last_on(Request::kSendBuffer, 200), 1);
  const Request granted = h.last_on(Request::kRecv, 101);
  EXPECT_GE(granted.spec.into, 0) << "it names the freed buffer";
  h.receive(granted, "y");
  EXPECT_EQ(h.last(Request::kSendBuffer).bytes, "y");
}

TEST(Pump, ABufferFreedWhileNobodyWaitsRetriesAtOnce) {
  Harness h;
  h.pumping(kClient, kBackend);
  const size_t from = h.mark();
  h.complete(h.last_on(Request::kRecv, kClient), -ENOBUFS);  // the ring has buffers again
  EXPECT_EQ(h.count(Request::kRecv, from), 1u);
}

TEST(Pump, TheIdleTimeoutClosesAndCancelsWhatIsInFlight) {
  Config c = default_config();
  c.listen[0].idle_timeout = Millis(60'000);
  Harness h(c);
  const uint32_t id = h.pumping(kClient, kBackend);
  h.advance(59 * kSec);
  EXPECT_EQ(h.session(id).phase, Phase::kPump);
  h.advance(1 * kSec);
  EXPECT_EQ(h.session(id).phase, Phase::kClosing);
  EXPECT_EQ(h.session(id).closed_as, CloseReason::k_idle_timeout);
  EXPECT_EQ(h.count(Request::kCancelSlot), 2u);
  EXPECT_FALSE(h.has(Request::kClose)) << "the slots stay until every completion came";
  h.complete(h.last_on(Request::kRecv, kClient), -ECANCELED);
  h.complete(h.last_on(Request::kRecv, kBackend), -ECANCELED);
  h.complete(h.last_on(Request::kCancelSlot, kClient), 0);
  EXPECT_EQ(h.session(id).phase, Phase::kClosing);
  h.complete(h.last_on(Request::kCancelSlot, kBackend), 0);
  EXPECT_EQ(h.session(id).phase, Phase::kFree);
  EXPECT_EQ(h.count(Request::kClose), 2u);
}

TEST(Pump, ActivityPushesTheIdleDeadlineWithoutTouchingTheTimer) {
  Config c = default_config();
  c.listen[0].idle_timeout = Millis(10'000);
  Harness h(c);
  const uint32_t id = h.pumping(kClient, kBackend);
  const uint64_t armed_at = h.ops->timers.at(id);
  h.advance(9 * kSec);
  h.receive(h.last_on(Request::kRecv, kClient), "k");
  EXPECT_EQ(h.ops->timers.at(id), armed_at) << "lazy: the timer is not moved by activity";
  h.advance(1 * kSec);
  EXPECT_EQ(h.session(id).phase, Phase::kPump) << "it fired early and was re-armed";
  EXPECT_GT(h.ops->timers.at(id), armed_at);
}

TEST(Pump, AHalfClosedSessionHasTheFinTimeout) {
  Config c = default_config();
  c.listen[0].fin_timeout = Millis(5'000);
  Harness h(c);
  const uint32_t id = h.pumping(kClient, kBackend);
  h.receive(h.last_on(Request::kRecv, kClient), "");
  h.end_batch();
  h.complete(h.last(Request::kShutdown), 0);
  h.advance(5 * kSec);
  EXPECT_EQ(h.session(id).closed_as, CloseReason::k_fin_timeout);
}

TEST(Pump, AnIdleTimeoutOfZeroIsOff) {
  Config c = default_config();
  c.listen[0].idle_timeout = Millis(0);
  Harness h(c);
  const uint32_t id = h.pumping(kClient, kBackend);
  h.advance(3600 * kSec);
  EXPECT_EQ(h.session(id).phase, Phase::kPump);
}

}  // namespace
}  // namespace ringlb::proxy::testing
