// The admit phase through the fake seam: what a client must pass before a byte of it is read.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "tests/proxy/harness.h"

namespace ringlb::proxy::testing {
namespace {

using metrics::CloseReason;

TEST(Admit, WithoutRulesNothingIsAskedAndTheSessionConnects) {
  Harness h;
  const uint32_t id = h.open();
  EXPECT_FALSE(h.has(Request::kPeerName));
  EXPECT_FALSE(h.has(Request::kRecv)) << "nothing is read before a backend is connected";
  EXPECT_EQ(h.session(id).phase, Phase::kConnect);
  EXPECT_EQ(h.last(Request::kSocket).family, AF_INET);
}

TEST(Admit, AnAclAsksForThePeerBeforeAnythingElse) {
  Config c = default_config();
  c.listen[0].deny = {cidr("127.0.0.9/32")};
  Harness h(c);
  const uint32_t id = h.open();
  ASSERT_EQ(h.ops->requests.size(), 1u);
  EXPECT_EQ(h.ops->requests[0].kind, Request::kPeerName);
  EXPECT_EQ(h.ops->requests[0].slot, kClientSlot);
  EXPECT_EQ(h.session(id).phase, Phase::kAdmit);
}

TEST(Admit, ADeniedPeerIsClosedWithoutAByteRead) {
  Config c = default_config();
  c.listen[0].deny = {cidr("127.0.0.9/32")};
  Harness h(c);
  h.open();
  h.answer_peer(h.last(Request::kPeerName), ipv4("127.0.0.9", 4000));
  EXPECT_EQ(h.closed(CloseReason::k_denied), 1u);
  EXPECT_FALSE(h.has(Request::kRecv));
  EXPECT_FALSE(h.has(Request::kSocket));
  EXPECT_EQ(h.last(Request::kClose).slot, kClientSlot);
  EXPECT_EQ(h.driver->live(), 0u);
}

TEST(Admit, AnAllowedPeerGoesOn) {
  Config c = default_config();
  c.listen[0].deny = {cidr("127.0.0.9/32")};
  Harness h(c);
  const uint32_t id = h.open();
  h.answer_peer(h.last(Request::kPeerName), ipv4("127.0.0.8", 4000));
  EXPECT_EQ(h.session(id).phase, Phase::kConnect);
  EXPECT_TRUE(h.session(id).has_peer);
}

TEST(Admit, APeerGoneBeforeItWasAskedIsAReset) {
  Config c = default_config();
  c.listen[0].allow = {cidr("127.0.0.0/8")};
  Harness h(c);
  h.open();
  h.complete(h.last(Request::kPeerName), -ENOTCONN);
  EXPECT_EQ(h.closed(CloseReason::k_reset), 1u);
}

TEST(Admit, AnyOtherPeerNameErrorIsAnError) {
  Config c = default_config();
  c.listen[0].allow = {cidr("127.0.0.0/8")};
  Harness h(c);
  h.open();
  h.complete(h.last(Request::kPeerName), -EINVAL);
  EXPECT_EQ(h.closed(CloseReason::k_error), 1u);
}

TEST(Admit, TheListenersMaxConnectionsHoldsExactly) {
  Config c = default_config();
  c.listen[0].max_connections = 1;
  Harness h(c);
  h.open(100);
  h.driver->open(101, 0, h.env->now_us);
  EXPECT_EQ(h.closed(CloseReason::k_max_connections), 1u);
  EXPECT_EQ(h.shared->listener_active[0].load(), 1u) << "the refused one is not counted";
  EXPECT_EQ(h.last(Request::kClose).slot, 101);
}

TEST(Admit, AFullSessionTableClosesTheClientAtOnce) {
  Harness h(default_config(), 1);
  h.open(100);
  const size_t from = h.mark();
  h.driver->open(101, 0, h.env->now_us);
  EXPECT_EQ(h.closed(CloseReason::k_max_connections), 1u);
  ASSERT_EQ(h.since(from).size(), 1u);
  EXPECT_EQ(h.since(from)[0].kind, Request::kClose);
  EXPECT_EQ(h.driver->live(), 1u);
}

TEST(Admit, PerSourceLimitsApplyBeforeAPeekOnAnSniListener) {
  Config c = default_config();
  c.listen[0].cluster = "";
  c.listen[0].sni_routes = {{"a.example", "web"}};
  c.listen[0].max_connections_per_source = 1;
  Harness h(c);
  h.open(100);
  h.answer_peer(h.last(Request::kPeerName), ipv4("127.0.0.7", 1));
  EXPECT_EQ(h.count(Request::kRecv), 1u) << "the first one peeks";
  const size_t from = h.mark();
  h.open(101);
  h.answer_peer(h.last(Request::kPeerName), ipv4("127.0.0.7", 2));
  EXPECT_EQ(h.closed(CloseReason::k_source_connections), 1u);
  EXPECT_FALSE(h.has(Request::kRecv, from)) << "the second is refused before a byte is read";
}

TEST(Admit, AnUntrustedSenderOfProxyHeadersIsRefusedBeforeItsHeaderIsRead) {
  Config c = default_config();
  c.listen[0].accept_proxy = true;
  c.listen[0].trusted_proxies = {cidr("127.0.0.5/32")};
  Harness h(c);
  h.open();
  h.answer_peer(h.last(Request::kPeerName), ipv4("127.0.0.6", 1));
  EXPECT_EQ(h.closed(CloseReason::k_untrusted_proxy), 1u);
  EXPECT_FALSE(h.has(Request::kRecv));
}

TEST(Admit, ATrustedProxyIsNotHeldToThePerSourceLimitsItself) {
  Config c = default_config();
  c.listen[0].accept_proxy = true;
  c.listen[0].trusted_proxies = {cidr("127.0.0.5/32")};
  c.listen[0].max_connections_per_source = 1;
  Harness h(c);
  for (int slot : {100, 101, 102}) {
    const uint32_t id = h.open(slot);
    h.answer_peer(h.last(Request::kPeerName), ipv4("127.0.0.5", static_cast<uint16_t>(slot)));
    EXPECT_EQ(h.session(id).phase, Phase::kProxyHeader);
  }
  EXPECT_EQ(h.count(Request::kRecv), 3u);
}

Config sni_listener() {
  Config c = default_config();
  c.listen[0].cluster = "";
  c.listen[0].sni_routes = {{"a.example", "web"}};
  return c;
}

TEST(Admit, ClientsStillInTheirHandshakeAreBoundedPerSourceUntilTheyRoute) {
  Config c = sni_listener();
  c.listen[0].max_handshakes_per_source = 2;
  Harness h(c);
  const uint32_t a = h.open(100);
  h.answer_peer(h.last(Request::kPeerName), ipv4("127.0.0.7", 1));
  h.open(101);
  h.answer_peer(h.last(Request::kPeerName), ipv4("127.0.0.7", 2));
  h.open(102);
  h.answer_peer(h.last(Request::kPeerName), ipv4("127.0.0.7", 3));
  EXPECT_EQ(h.closed(CloseReason::k_source_handshakes), 1u);
  const uint32_t other = h.open(103);
  h.answer_peer(h.last(Request::kPeerName), ipv4("127.0.0.8", 4));
  EXPECT_EQ(h.session(other).phase, Phase::kClientHello) << "another source is not held to its bound";
  // The first one's hello is whole: it routes, and its place is free again.
  h.receive(h.last_on(Request::kRecv, 100), client_hello("a.example"));
  EXPECT_EQ(h.session(a).phase, Phase::kConnect);
  const uint32_t again = h.open(104);
  h.answer_peer(h.last(Request::kPeerName), ipv4("127.0.0.7", 5));
  EXPECT_EQ(h.session(again).phase, Phase::kClientHello);
}

TEST(Admit, ClientsStillInTheirHandshakeAreBoundedPerListener) {
  Config c = sni_listener();
  c.listen[0].max_handshakes = 2;
  c.listen[0].max_handshakes_per_source = 0;
  Harness h(c);
  h.open(100);
  h.open(101);
  EXPECT_FALSE(h.has(Request::kPeerName)) << "no per-source bound: the peer is not needed";
  h.open(102);
  EXPECT_EQ(h.closed(CloseReason::k_handshakes), 1u);
  EXPECT_EQ(h.shared->listener_handshakes[0].load(), 2u);
  h.driver->close_all(CloseReason::k_drain);
  EXPECT_EQ(h.shared->listener_handshakes[0].load(), 0u) << "released at the close";
}

TEST(Admit, ATrustedProxyIsNotBoundPerSourceInItsHandshakes) {
  Config c = default_config();
  c.listen[0].accept_proxy = true;
  c.listen[0].trusted_proxies = {cidr("127.0.0.5/32")};
  c.listen[0].max_handshakes_per_source = 1;
  Harness h(c);
  for (int slot : {100, 101, 102}) {
    const uint32_t id = h.open(slot);
    h.answer_peer(h.last(Request::kPeerName), ipv4("127.0.0.5", static_cast<uint16_t>(slot)));
    EXPECT_EQ(h.session(id).phase, Phase::kProxyHeader);
  }
}

TEST(Admit, AnIpv6SourceIsKeyedByItsPrefix) {
  Config c = default_config();
  c.listen[0].max_connections_per_source = 1;
  Harness h(c);
  sockaddr_in6 one{};
  one.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "2001:db8:1:2::1", &one.sin6_addr);
  sockaddr_in6 same_64 = one;
  inet_pton(AF_INET6, "2001:db8:1:2:ffff::9", &same_64.sin6_addr);
  sockaddr_in6 other_64 = one;
  inet_pton(AF_INET6, "2001:db8:1:3::1", &other_64.sin6_addr);
  h.open(100);
  h.answer_peer(h.last(Request::kPeerName), one);
  h.open(101);
  h.answer_peer(h.last(Request::kPeerName), same_64);
  EXPECT_EQ(h.closed(CloseReason::k_source_connections), 1u) << "one host, another /128 of its /64";
  const uint32_t other = h.open(102);
  h.answer_peer(h.last(Request::kPeerName), other_64);
  EXPECT_EQ(h.session(other).phase, Phase::kConnect);
}

}  // namespace
}  // namespace ringlb::proxy::testing
