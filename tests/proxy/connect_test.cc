// The route and connect phases through the fake seam: picking, the socket, the connect and its
// retries, the maxconn queue, a send-proxy header, passive health.
#include <gtest/gtest.h>

#include "tests/proxy/harness.h"

namespace ringlb::proxy::testing {
namespace {

using metrics::CloseReason;

TEST(Connect, ASocketThenAConnectToThePickedBackendThenThePump) {
  Harness h;
  const uint32_t id = h.open();
  h.give_socket(h.last(Request::kSocket), 200);
  EXPECT_EQ(h.session(id).backend, 200);
  const Request connect = h.last(Request::kConnect);
  EXPECT_EQ(connect.slot, 200);
  EXPECT_EQ(connect.to, "127.0.0.1:9001");
  EXPECT_EQ(h.shared->clusters[0].get()->backends[0].state->active.load(), 1u) << "counted from the pick on";
  h.complete(connect, 0);
  EXPECT_EQ(h.session(id).phase, Phase::kPump);
  EXPECT_EQ(h.count(Request::kRecv), 2u) << "both directions";
}

TEST(Connect, ARefusedConnectTriesTheNextBackend) {
  Harness h;
  const uint32_t id = h.open();
  h.give_socket(h.last(Request::kSocket), 200);
  const size_t from = h.mark();
  h.complete(h.last(Request::kConnect), -ECONNREFUSED);
  EXPECT_EQ(h.last(Request::kClose).slot, 200) << "the failed socket is closed";
  EXPECT_TRUE(h.has(Request::kSocket, from));
  h.give_socket(h.last(Request::kSocket), 201);
  EXPECT_EQ(h.last(Request::kConnect).to, "127.0.0.1:9002");
  EXPECT_EQ(h.session(id).attempts, 2u);
  EXPECT_EQ(h.env->stats.backends[h.shared->clusters[0].get()->backends[0].id].connect_failures.get(), 1u);
  EXPECT_EQ(h.shared->clusters[0].get()->backends[0].state->active.load(), 0u);
}

TEST(Connect, AConnectTimeoutTriesTheNextBackendToo) {
  Harness h;
  h.open();
  h.give_socket(h.last(Request::kSocket), 200);
  h.complete(h.last(Request::kConnect), -ECANCELED);  // its linked timeout fired
  h.give_socket(h.last(Request::kSocket), 201);
  EXPECT_EQ(h.last(Request::kConnect).to, "127.0.0.1:9002");
}

TEST(Connect, WhenEveryAttemptFailsTheClientIsClosedConnectFailed) {
  Config c = default_config();
  c.clusters[0].connect_attempts = 2;
  Harness h(c);
  h.open();
  for (int slot : {200, 201}) {
    h.give_socket(h.last(Request::kSocket), slot);
    h.complete(h.last(Request::kConnect), -ECONNREFUSED);
  }
  EXPECT_EQ(h.closed(CloseReason::k_connect_failed), 1u);
  EXPECT_EQ(h.driver->live(), 0u);
}

TEST(Connect, AFullTableRetriesTheSocketAfterTheBatchOnly) {
  Harness h;
  const uint32_t id = h.open();
  const size_t from = h.mark();
  h.complete(h.last(Request::kSocket), -ENFILE);
  EXPECT_FALSE(h.has(Request::kSocket, from)) << "not before this batch's closes have run";
  h.end_batch();
  EXPECT_TRUE(h.has(Request::kSocket, from));
  EXPECT_EQ(h.session(id).socket_retries, 1);
}

TEST(Connect, AFullTableThreeTimesInARowIsAnError) {
  Harness h;
  h.open();
  for (int i = 0; i < 4; ++i) {
    h.complete(h.last(Request::kSocket), -ENFILE);
    h.end_batch();
  }
  EXPECT_EQ(h.closed(CloseReason::k_error), 1u);
}

TEST(Connect, AClosedSessionIsNotRetriedAfterTheBatch) {
  Harness h;
  h.open();
  h.complete(h.last(Request::kSocket), -ENFILE);
  h.driver->close_all(CloseReason::k_drain);
  const size_t from = h.mark();
  h.end_batch();
  EXPECT_FALSE(h.has(Request::kSocket, from));
}

TEST(Connect, AnyOtherSocketErrorCloses) {
  Harness h;
  h.open();
  h.complete(h.last(Request::kSocket), -EMFILE);
  EXPECT_EQ(h.closed(CloseReason::k_error), 1u);
}

TEST(Connect, NoBackendUpClosesWithNoBackend) {
  Harness h;
  for (const auto& b : h.shared->clusters[0].get()->backends) b.state->up.store(0);
  h.open();
  EXPECT_EQ(h.closed(CloseReason::k_no_backend), 1u);
  EXPECT_FALSE(h.has(Request::kSocket));
}

Config one_full_backend() {
  Config c = default_config();
  c.clusters[0].backends.resize(1);
  c.clusters[0].backends[0].max_connections = 1;
  c.clusters[0].queue_timeout = Millis(2000);
  return c;
}

TEST(Connect, AFullBackendQueuesTheClientUntilThereIsRoom) {
  Harness h(one_full_backend());
  const uint32_t first = h.pumping(100, 200);
  const size_t from = h.mark();
  const uint32_t second = h.open(101);
  EXPECT_TRUE(h.session(second).queued);
  EXPECT_FALSE(h.has(Request::kSocket, from));
  h.end_batch();
  EXPECT_EQ(h.ops->queue_polls, 1) << "a poll for room other workers make";
  EXPECT_EQ(h.env->stats.queued.get(), 1u);
  // The first one ends: its backend has room for the second.
  h.receive(h.last_on(Request::kRecv, 200), "");  // backend EOF
  h.receive(h.last_on(Request::kRecv, 100), "");  // client EOF
  h.end_batch();
  h.complete(h.last(Request::kShutdown), 0);
  EXPECT_EQ(h.session(first).phase, Phase::kFree);
  h.end_batch();
  EXPECT_FALSE(h.session(second).queued);
  EXPECT_TRUE(h.has(Request::kSocket, from));
  EXPECT_EQ(h.env->stats.queued.get(), 0u);
}

TEST(Connect, TheQueueTimeoutClosesAQueuedClient) {
  Harness h(one_full_backend());
  h.pumping(100, 200);
  h.open(101);
  h.advance(2000 * kMs);
  EXPECT_EQ(h.closed(CloseReason::k_queue_timeout), 1u);
  EXPECT_EQ(h.ops->queued(), 0u);
}

TEST(Connect, ASendProxyHeaderGoesBeforeAnyClientByteAndAShortSendSendsTheRest) {
  Config c = default_config();
  c.clusters[0].backends[0].proxy_protocol = ProxyProtocol::kV1;
  c.clusters[0].backends.resize(1);
  Harness h(c);
  const uint32_t id = h.open();
  // Its cluster needs the client's address: route asked for it first.
  h.answer_peer(h.last(Request::kPeerName), ipv4("127.0.0.3", 5555));
  h.give_socket(h.last(Request::kSocket), 200);
  h.complete(h.last(Request::kConnect), 0);
  EXPECT_FALSE(h.has(Request::kRecv)) << "nothing is read before the header is out";
  const Request header = h.last(Request::kSend);
  EXPECT_EQ(header.slot, 200);
  EXPECT_EQ(header.bytes, "PROXY TCP4 127.0.0.3 127.0.0.1 5555 8000\r\n");
  h.complete(header, 10);
  EXPECT_EQ(h.last(Request::kSend).bytes, header.bytes.substr(10));
  h.complete(h.last(Request::kSend), static_cast<int>(header.bytes.size() - 10));
  EXPECT_EQ(h.session(id).phase, Phase::kPump);
}

TEST(Connect, AFailedSendProxyHeaderCloses) {
  Config c = default_config();
  c.clusters[0].backends[0].proxy_protocol = ProxyProtocol::kV2;
  c.clusters[0].backends.resize(1);
  Harness h(c);
  h.open();
  h.answer_peer(h.last(Request::kPeerName), ipv4("127.0.0.3", 5555));
  h.give_socket(h.last(Request::kSocket), 200);
  h.complete(h.last(Request::kConnect), 0);
  h.complete(h.last(Request::kSend), -EPIPE);
  EXPECT_EQ(h.closed(CloseReason::k_reset), 1u);
}

TEST(Connect, FailedConnectsInARowTakeABackendDownWhereChecksRun) {
  Config c = default_config();
  c.clusters[0].health.interval = Millis(2000);
  c.clusters[0].health.fall = 2;
  c.clusters[0].connect_attempts = 1;
  c.clusters[0].backends.resize(1);
  Harness h(c);
  const auto& backend = h.shared->clusters[0].get()->backends[0];
  backend.state->up.store(1);
  for (int slot : {100, 101}) {
    h.open(slot);
    h.give_socket(h.last(Request::kSocket), slot + 100);
    h.complete(h.last(Request::kConnect), -ECONNREFUSED);
  }
  EXPECT_EQ(backend.state->up.load(), 0u);
}

TEST(Route, MaglevAsksForThePeerWhenNothingDidAndHashesIt) {
  Config c = default_config();
  c.clusters[0].policy = balancer::Policy::kMaglev;
  Harness h(c);
  const uint32_t id = h.open();
  EXPECT_EQ(h.session(id).phase, Phase::kRoute);
  h.answer_peer(h.last(Request::kPeerName), ipv4("127.0.0.3", 5555));
  EXPECT_NE(h.session(id).key_hash, 0u);
  EXPECT_EQ(h.session(id).phase, Phase::kConnect);
}

TEST(Route, AClientGoneBeforeRoutingIsAReset) {
  Config c = default_config();
  c.clusters[0].policy = balancer::Policy::kMaglev;
  Harness h(c);
  h.open();
  h.complete(h.last(Request::kPeerName), -ENOTCONN);
  EXPECT_EQ(h.closed(CloseReason::k_reset), 1u);
}

TEST(Route, TheSameClientHashesToTheSameBackend) {
  Config c = default_config();
  c.clusters[0].policy = balancer::Policy::kMaglev;
  Harness h(c);
  std::string first;
  for (int slot : {100, 101, 102}) {
    h.open(slot);
    h.answer_peer(h.last(Request::kPeerName), ipv4("198.51.100.4", static_cast<uint16_t>(slot)));
    h.give_socket(h.last(Request::kSocket), slot + 100);
    if (first.empty()) first = h.last(Request::kConnect).to;
    EXPECT_EQ(h.last(Request::kConnect).to, first);
  }
}

}  // namespace
}  // namespace ringlb::proxy::testing
