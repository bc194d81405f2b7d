// The admit phase through the fake seam: what a client must pass before a byte of it is read.
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

}  // namespace
}  // namespace ringlb::proxy::testing
