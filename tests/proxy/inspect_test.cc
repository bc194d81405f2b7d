// The two inspect phases through the fake seam: the PROXY header (inspect_proxy.cc) and the
// ClientHello (inspect_tls.cc), with every result their peeks can get.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "tests/proxy/harness.h"

namespace ringlb::proxy::testing {
namespace {

using metrics::CloseReason;

const std::string kHeader = "PROXY TCP4 203.0.113.7 127.0.0.1 4711 8000\r\n";

Config accept_proxy(bool trusted = false) {
  Config c = default_config();
  c.listen[0].accept_proxy = true;
  if (trusted) c.listen[0].trusted_proxies = {cidr("127.0.0.5/32")};
  return c;
}

Config sni() {
  Config c = default_config();
  c.clusters.push_back(cluster("api", {"127.0.0.1:9101"}));
  c.listen[0].cluster = "";
  c.listen[0].sni_routes = {{"a.example", "web"}, {"b.example", "api"}};
  return c;
}

// A trusted proxy's session waiting for its header's peek.
uint32_t from_trusted_proxy(Harness& h, int slot) {
  const uint32_t id = h.open(slot);
  h.answer_peer(h.last(Request::kPeerName), ipv4("127.0.0.5", static_cast<uint16_t>(slot)));
  return id;
}

TEST(InspectProxy, PeeksThenTakesExactlyTheHeaderAndTheClientItNames) {
  Harness h(accept_proxy());
  const uint32_t id = h.arrive();
  const Request peek = h.last(Request::kRecv);
  EXPECT_TRUE(peek.spec.peek);
  EXPECT_FALSE(peek.spec.poll_first) << "the proxy in front speaks at once";
  h.receive(peek, kHeader + "GET / HTTP/1.0\r\n");
  EXPECT_EQ(h.ops->in_use, 0) << "peeked bytes stay in the socket: the buffer goes back";
  const Request consume = h.last(Request::kRecvExact);
  EXPECT_EQ(consume.len, kHeader.size()) << "not one byte of the client's data";
  EXPECT_FALSE(h.has(Request::kSocket));
  h.complete(consume, static_cast<int>(kHeader.size()));
  EXPECT_EQ(h.session(id).phase, Phase::kConnect);
  const auto& v4 = reinterpret_cast<const sockaddr_in&>(h.session(id).peer);
  char text[32];
  inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text));
  EXPECT_STREQ(text, "203.0.113.7");
  EXPECT_TRUE(h.session(id).has_proxied_dst);
}

TEST(InspectProxy, AHeaderInPiecesIsTakenPieceByPieceThenPeekedAgain) {
  Harness h(accept_proxy());
  const uint32_t id = h.arrive();
  h.receive(h.last(Request::kRecv), kHeader.substr(0, 20));
  const Request consume = h.last(Request::kRecvExact);
  EXPECT_EQ(consume.len, 20u);
  const size_t from = h.mark();
  h.complete(consume, 20);
  ASSERT_EQ(h.count(Request::kRecv, from), 1u) << "peeks again for the rest";
  h.receive(h.last(Request::kRecv), kHeader.substr(20));
  h.complete(h.last(Request::kRecvExact), static_cast<int>(kHeader.size() - 20));
  EXPECT_EQ(h.session(id).phase, Phase::kConnect);
}

TEST(InspectProxy, AMalformedHeaderClosesTheClient) {
  Harness h(accept_proxy());
  h.arrive();
  h.receive(h.last(Request::kRecv), "GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(h.closed(CloseReason::k_bad_proxy_header), 1u);
  EXPECT_FALSE(h.has(Request::kRecvExact));
  EXPECT_EQ(h.ops->in_use, 0);
}

TEST(InspectProxy, EofBeforeAWholeHeaderIsABadHeader) {
  Harness h(accept_proxy());
  h.arrive();
  h.receive(h.last(Request::kRecv), "");
  EXPECT_EQ(h.closed(CloseReason::k_bad_proxy_header), 1u);
}

TEST(InspectProxy, AResetWhilePeekingIsAReset) {
  Harness h(accept_proxy());
  h.arrive();
  h.complete(h.last(Request::kRecv), -ECONNRESET);
  EXPECT_EQ(h.closed(CloseReason::k_reset), 1u);
}

TEST(InspectProxy, AShortConsumeIsAnError) {
  Harness h(accept_proxy());
  h.arrive();
  h.receive(h.last(Request::kRecv), kHeader);
  h.complete(h.last(Request::kRecvExact), 3);
  EXPECT_EQ(h.closed(CloseReason::k_error), 1u);
}

TEST(InspectProxy, EofWhileConsumingIsAnError) {
  Harness h(accept_proxy());
  h.arrive();
  h.receive(h.last(Request::kRecv), kHeader);
  h.complete(h.last(Request::kRecvExact), 0);
  EXPECT_EQ(h.closed(CloseReason::k_error), 1u);
}

TEST(InspectProxy, TheHeaderTimeoutCountsFromTheFirstPeek) {
  Config c = accept_proxy();
  c.listen[0].proxy_header_timeout = Millis(5000);
  Harness h(c);
  const uint32_t id = h.arrive();
  h.advance(4999 * kMs);
  EXPECT_EQ(h.session(id).phase, Phase::kProxyHeader);
  h.advance(1 * kMs);
  EXPECT_EQ(h.session(id).closed_as, CloseReason::k_bad_proxy_header);
  EXPECT_TRUE(h.has(Request::kCancelSlot)) << "its peek was still in flight";
  h.complete(h.last(Request::kRecv), -ECANCELED);
  h.complete(h.last(Request::kCancelSlot), 0);
  EXPECT_EQ(h.closed(CloseReason::k_bad_proxy_header), 1u);
}

TEST(InspectProxy, WithNoBufferItWaitsItsTurnAndPeeksIntoTheGrantedOne) {
  Config c = accept_proxy();
  c.buffers_per_worker = 1;
  Harness h(c);
  h.arrive(100);  // one that holds the only buffer: its header, its backend, then bytes
  h.receive(h.last(Request::kRecv), kHeader);
  h.complete(h.last(Request::kRecvExact), static_cast<int>(kHeader.size()));
  h.give_socket(h.last(Request::kSocket), 200);
  h.complete(h.last(Request::kConnect), 0);
  h.receive(h.last_on(Request::kRecv, 200), "x");
  const uint32_t id = h.arrive(101);
  const size_t from = h.mark();
  h.receive(h.last(Request::kRecv), kHeader);  // the ring is empty: -ENOBUFS
  EXPECT_EQ(h.since(from).size(), 0u) << "no retry: it waits";
  EXPECT_TRUE(h.session(id).flow[kUp].waiting);
  h.complete(h.last(Request::kSendBuffer), 1);  // the holder's send frees its buffer
  const Request peek = h.last(Request::kRecv);
  EXPECT_EQ(peek.slot, 101);
  EXPECT_GE(peek.spec.into, 0) << "the freed buffer went to the waiter, not the ring";
  h.receive(peek, kHeader);
  h.complete(h.last(Request::kRecvExact), static_cast<int>(kHeader.size()));
  EXPECT_EQ(h.session(id).phase, Phase::kConnect);
}

TEST(InspectProxy, ATrustedProxysClientIsHeldToTheAcl) {
  Config c = accept_proxy(true);
  c.listen[0].deny = {cidr("203.0.113.0/24")};
  Harness h(c);
  from_trusted_proxy(h, 100);
  h.receive(h.last(Request::kRecv), kHeader);
  h.complete(h.last(Request::kRecvExact), static_cast<int>(kHeader.size()));
  EXPECT_EQ(h.closed(CloseReason::k_denied), 1u);
}

TEST(InspectProxy, ATrustedProxysClientsAreCountedPerSourceAndReleased) {
  Config c = accept_proxy(true);
  c.listen[0].max_connections_per_source = 1;
  Harness h(c);
  const uint32_t first = from_trusted_proxy(h, 100);
  h.receive(h.last(Request::kRecv), kHeader);
  h.complete(h.last(Request::kRecvExact), static_cast<int>(kHeader.size()));
  EXPECT_EQ(h.session(first).phase, Phase::kConnect);
  from_trusted_proxy(h, 101);
  h.receive(h.last(Request::kRecv), kHeader);
  h.complete(h.last(Request::kRecvExact), static_cast<int>(kHeader.size()));
  EXPECT_EQ(h.closed(CloseReason::k_source_connections), 1u) << "the same client named twice";
  h.driver->close_all(CloseReason::k_drain);
  h.complete(h.last(Request::kSocket), -ECANCELED);  // the first's socket request was in flight
  h.complete(h.last(Request::kCancelSlot), 0);
  EXPECT_EQ(h.driver->live(), 0u);
  const uint32_t third = from_trusted_proxy(h, 102);
  h.receive(h.last(Request::kRecv), kHeader);
  h.complete(h.last(Request::kRecvExact), static_cast<int>(kHeader.size()));
  EXPECT_EQ(h.session(third).phase, Phase::kConnect) << "the first one's count was released";
}

TEST(InspectProxy, ALocalHeaderFromATrustedProxyCountsTheProxyItself) {
  Config c = accept_proxy(true);
  c.listen[0].max_connections_per_source = 1;
  Harness h(c);
  const std::string local = "PROXY UNKNOWN\r\n";
  const uint32_t a = from_trusted_proxy(h, 100);
  h.receive(h.last(Request::kRecv), local);
  h.complete(h.last(Request::kRecvExact), static_cast<int>(local.size()));
  EXPECT_EQ(h.session(a).phase, Phase::kConnect);
  from_trusted_proxy(h, 101);
  h.receive(h.last(Request::kRecv), local);
  h.complete(h.last(Request::kRecvExact), static_cast<int>(local.size()));
  EXPECT_EQ(h.closed(CloseReason::k_source_connections), 1u);
}

TEST(InspectTls, AWholeHelloRoutesByItsServerName) {
  Harness h(sni());
  const uint32_t id = h.arrive();
  const Request peek = h.last(Request::kRecv);
  EXPECT_TRUE(peek.spec.peek);
  h.receive(peek, client_hello("b.example"));
  EXPECT_EQ(h.ops->in_use, 0);
  EXPECT_EQ(h.session(id).phase, Phase::kConnect);
  EXPECT_EQ(h.session(id).cluster, 1);
  EXPECT_EQ(h.last(Request::kSocket).family, AF_INET);
  EXPECT_EQ(h.driver->extras().server_names[id], "b.example");
  EXPECT_FALSE(h.has(Request::kLowat)) << "a hello in one piece needs no low-water mark";
}

TEST(InspectTls, AHelloInPiecesWaitsForTheRestAtTheLowWaterMark) {
  Harness h(sni());
  const uint32_t id = h.arrive();
  const std::string hello = client_hello("a.example");
  h.receive(h.last(Request::kRecv), hello.substr(0, 10));
  const Request lowat = h.last(Request::kLowat);
  EXPECT_TRUE(lowat.linked) << "the next peek must wait for it";
  EXPECT_EQ(static_cast<size_t>(lowat.value), hello.size());
  const Request again = h.last(Request::kRecv);
  EXPECT_TRUE(again.spec.poll_first);
  h.receive(again, hello);
  EXPECT_EQ(h.session(id).phase, Phase::kConnect);
  const Request reset = h.last(Request::kLowat);
  EXPECT_EQ(reset.value, 1) << "back to the default for the pump";
  EXPECT_FALSE(reset.linked);
}

TEST(InspectTls, TheSameBytesAgainMeanTheClientSentFinMidHello) {
  Harness h(sni());
  h.arrive();
  const std::string hello = client_hello("a.example");
  h.receive(h.last(Request::kRecv), hello.substr(0, 10));
  h.receive(h.last(Request::kRecv), hello.substr(0, 10));
  EXPECT_EQ(h.closed(CloseReason::k_bad_client_hello), 1u);
}

TEST(InspectTls, NotTlsIsABadHello) {
  Harness h(sni());
  h.arrive();
  h.receive(h.last(Request::kRecv), "GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(h.closed(CloseReason::k_bad_client_hello), 1u);
}

TEST(InspectTls, EofBeforeAHelloIsABadHello) {
  Harness h(sni());
  h.arrive();
  h.receive(h.last(Request::kRecv), "");
  EXPECT_EQ(h.closed(CloseReason::k_bad_client_hello), 1u);
}

TEST(InspectTls, ANameNoRouteMatchesClosesWithNoRoute) {
  Harness h(sni());
  h.arrive();
  h.receive(h.last(Request::kRecv), client_hello("c.example"));
  EXPECT_EQ(h.closed(CloseReason::k_no_route), 1u);
  EXPECT_FALSE(h.has(Request::kSocket));
}

TEST(InspectTls, TheInspectTimeoutClosesASilentClient) {
  Config c = sni();
  c.listen[0].tls_inspect_timeout = Millis(3000);
  Harness h(c);
  const uint32_t id = h.arrive();
  h.advance(2999 * kMs);
  EXPECT_EQ(h.session(id).phase, Phase::kClientHello);
  h.advance(1 * kMs);
  EXPECT_EQ(h.session(id).closed_as, CloseReason::k_bad_client_hello);
}

TEST(InspectTls, APeekCancelledBecauseItsLowWaterMarkFailedCloses) {
  Harness h(sni());
  h.arrive();
  h.receive(h.last(Request::kRecv), client_hello("a.example").substr(0, 10));
  h.complete(h.last(Request::kRecv), -ECANCELED);
  EXPECT_EQ(h.closed(CloseReason::k_error), 1u);
}

}  // namespace
}  // namespace ringlb::proxy::testing
