// The pure parts of DNS discovery (no sockets, an injected clock): when a name is looked up
// again, the hold state machine, SRV weights and priorities, the backends an entry gives, and
// the TTL read from a raw answer.
#include "server/discovery/dns_policy.h"

#include <gtest/gtest.h>

namespace ringlb::discovery::dns {
namespace {

constexpr Nanos kSecond = 1'000'000'000ULL;

Address ip(const std::string& text) {
  Address a;
  std::string why;
  EXPECT_TRUE(parse_address(text, &a, &why)) << why;
  return a;
}

std::vector<Resolved> set_of(std::vector<std::string> addresses) {
  std::vector<Resolved> out;
  for (const std::string& a : addresses) out.push_back(Resolved{ip(a), 1, false});
  return out;
}

TEST(DnsInterval, TheTtlWithinTheBounds) {
  EXPECT_EQ(next_interval(30, Millis{1000}, Millis{300000}), Millis{30000});
  EXPECT_EQ(next_interval(0, Millis{1000}, Millis{300000}), Millis{1000});       // TTL 0: not a busy loop
  EXPECT_EQ(next_interval(86400, Millis{1000}, Millis{300000}), Millis{300000});  // a day: capped
  EXPECT_EQ(next_interval(5, Millis{10000}, Millis{20000}), Millis{10000});
  EXPECT_EQ(next_interval(UINT32_MAX, Millis{1000}, Millis{2000}), Millis{2000});
}

TEST(DnsInterval, FailuresBackOffToThirtySecondsAtMost) {
  EXPECT_EQ(retry_interval(1, Millis{1000}, Millis{300000}), Millis{1000});
  EXPECT_EQ(retry_interval(2, Millis{1000}, Millis{300000}), Millis{2000});
  EXPECT_EQ(retry_interval(4, Millis{1000}, Millis{300000}), Millis{8000});
  EXPECT_EQ(retry_interval(50, Millis{1000}, Millis{300000}), Millis{30000});
  EXPECT_EQ(retry_interval(50, Millis{1000}, Millis{5000}), Millis{5000});    // and max-interval
  EXPECT_EQ(retry_interval(50, Millis{60000}, Millis{90000}), Millis{60000});  // never below min
}

TEST(DnsHold, AFailureKeepsTheSetForTheHoldThenWithdrawsIt) {
  NameState s(Millis{10000});
  EXPECT_EQ(s.state(), NameState::State::kPending);
  NameState::Step step = s.succeeded(0, set_of({"127.0.0.3:0", "127.0.0.2:0"}));
  EXPECT_EQ(step.from, NameState::State::kPending);
  EXPECT_EQ(step.to, NameState::State::kValid);
  EXPECT_TRUE(step.set_changed);
  EXPECT_EQ(s.served()[0].address.to_string(), "127.0.0.2:0");  // sorted
  // The same set again changes nothing.
  EXPECT_FALSE(s.succeeded(1 * kSecond, set_of({"127.0.0.2:0", "127.0.0.3:0"})).set_changed);

  step = s.failed(2 * kSecond, Result::kNxdomain);
  EXPECT_EQ(step.to, NameState::State::kHolding);
  EXPECT_FALSE(step.set_changed);
  EXPECT_EQ(s.served().size(), 2u);
  ASSERT_TRUE(s.hold_deadline());
  EXPECT_EQ(*s.hold_deadline(), 12 * kSecond);  // from the first failure
  // More failures within the hold: still held, the deadline does not move.
  step = s.failed(5 * kSecond, Result::kTimeout);
  EXPECT_EQ(step.from, NameState::State::kHolding);
  EXPECT_EQ(step.to, NameState::State::kHolding);
  EXPECT_EQ(*s.hold_deadline(), 12 * kSecond);
  EXPECT_EQ(s.last_failure(), Result::kTimeout);
  EXPECT_FALSE(s.expire(11 * kSecond).set_changed);
  EXPECT_EQ(s.served().size(), 2u);
  step = s.expire(12 * kSecond);
  EXPECT_EQ(step.to, NameState::State::kFailed);
  EXPECT_TRUE(step.set_changed);
  EXPECT_TRUE(s.served().empty());
  EXPECT_FALSE(s.hold_deadline());
  // Back: served again, and the next failure holds for a whole hold again.
  step = s.succeeded(20 * kSecond, set_of({"127.0.0.4:0"}));
  EXPECT_EQ(step.from, NameState::State::kFailed);
  EXPECT_TRUE(step.set_changed);
  s.failed(30 * kSecond, Result::kServfail);
  EXPECT_EQ(*s.hold_deadline(), 40 * kSecond);
}

TEST(DnsHold, AFailurePastTheHoldWithdrawsAtOnce) {
  NameState s(Millis{10000});
  s.succeeded(0, set_of({"127.0.0.2:0"}));
  s.failed(1 * kSecond, Result::kTimeout);
  const NameState::Step step = s.failed(11 * kSecond, Result::kTimeout);
  EXPECT_EQ(step.from, NameState::State::kHolding);
  EXPECT_EQ(step.to, NameState::State::kFailed);
  EXPECT_TRUE(step.set_changed);
  // A hold of 0: the first failure withdraws.
  NameState none(Millis{0});
  none.succeeded(0, set_of({"127.0.0.2:0"}));
  const NameState::Step at_once = none.failed(1, Result::kNxdomain);
  EXPECT_EQ(at_once.from, NameState::State::kValid);
  EXPECT_EQ(at_once.to, NameState::State::kFailed);
  EXPECT_TRUE(none.served().empty());
}

TEST(DnsHold, ANameThatNeverAnsweredServesNothing) {
  NameState s(Millis{10000});
  const NameState::Step step = s.failed(0, Result::kNxdomain);
  EXPECT_EQ(step.to, NameState::State::kFailed);
  EXPECT_FALSE(step.set_changed);
  EXPECT_FALSE(s.hold_deadline());
  EXPECT_EQ(s.failures(), 1u);
}

TEST(DnsSrv, WeightsScaleToTheLargestOfTheirPriority) {
  EXPECT_EQ(srv_weight(300, 300), 1000u);
  EXPECT_EQ(srv_weight(100, 300), 333u);
  EXPECT_EQ(srv_weight(1, 65535), 1u);  // rounds to 0, but 0 would mean drained
  EXPECT_EQ(srv_weight(0, 100), 1u);    // RFC 2782: a very small chance
  EXPECT_EQ(srv_weight(0, 0), 1u);      // all zero: an even split
  EXPECT_EQ(srv_weight(65535, 65535), 1000u);
}

TEST(DnsSrv, TheLowestPriorityValueIsPrimaryTheRestBackup) {
  const std::vector<SrvRecord> records = {
      {20, 100, 9003, "c.test"}, {10, 100, 9001, "a.test"}, {10, 300, 9002, "b.test"}, {10, 5, 9009, "gone.test"}};
  const std::map<std::string, std::vector<Address>> targets = {
      {"a.test", {ip("127.0.0.2:0")}}, {"b.test", {ip("127.0.0.3:0"), ip("[::1]:0")}}, {"c.test", {ip("127.0.0.4:0")}}};
  const std::vector<Resolved> set = from_srv(records, targets);
  ASSERT_EQ(set.size(), 4u);  // gone.test has no addresses
  std::map<std::string, std::pair<uint32_t, bool>> got;
  for (const Resolved& r : set) got[r.address.to_string()] = {r.weight, r.backup};
  EXPECT_EQ(got["127.0.0.2:9001"], std::make_pair(333u, false));
  EXPECT_EQ(got["127.0.0.3:9002"], std::make_pair(1000u, false));
  EXPECT_EQ(got["[::1]:9002"], std::make_pair(1000u, false));
  EXPECT_EQ(got["127.0.0.4:9003"], std::make_pair(1000u, true));  // scaled within its own priority
}

TEST(DnsSrv, AnAddressAtTwoPrioritiesCountsAtTheBetterOne) {
  const std::vector<SrvRecord> records = {{20, 1, 80, "a.test"}, {10, 1, 80, "b.test"}};
  const std::vector<Resolved> set =
      from_srv(records, {{"a.test", {ip("127.0.0.2:0")}}, {"b.test", {ip("127.0.0.2:0")}}});
  ASSERT_EQ(set.size(), 1u);
  EXPECT_FALSE(set[0].backup);
}

TEST(DnsBackends, EachAddressGetsTheEntrysSettingsAndItsIpPortAsText) {
  BackendConfig host;
  ASSERT_TRUE(parse_backend("db.test:5432,weight=7,send-proxy-v2,max-connections=9,rise=4", &host).ok());
  std::vector<Resolved> set = set_of({"127.0.0.2:5432", "[::1]:5432"});
  const std::vector<BackendConfig> got = backends_for(host, set);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].text, "127.0.0.2:5432");
  EXPECT_EQ(got[1].text, "[::1]:5432");
  for (const BackendConfig& b : got) {
    EXPECT_EQ(b.weight, 7u);
    EXPECT_EQ(b.proxy_protocol, ProxyProtocol::kV2);
    EXPECT_EQ(b.max_connections, 9u);
    EXPECT_EQ(b.health_rise, 4u);
    EXPECT_EQ(b.dns.kind, DnsName::Kind::kNone);
  }
  BackendConfig srv;
  ASSERT_TRUE(parse_backend("srv:_pg._tcp.test,max-connections=3", &srv).ok());
  set = {Resolved{ip("127.0.0.2:9001"), 333, false}, Resolved{ip("127.0.0.3:9002"), 1000, true}};
  const std::vector<BackendConfig> srv_got = backends_for(srv, set);
  EXPECT_EQ(srv_got[0].weight, 333u);
  EXPECT_FALSE(srv_got[0].backup);
  EXPECT_EQ(srv_got[1].weight, 1000u);
  EXPECT_TRUE(srv_got[1].backup);
  EXPECT_EQ(srv_got[1].max_connections, 3u);
  // "backup" on the entry makes every target a backup.
  srv.backup = true;
  EXPECT_TRUE(backends_for(srv, set)[0].backup);
}

// A DNS response: header, one question, then answers of (type, ttl), each with 4 bytes of data.
std::vector<unsigned char> response(const std::vector<std::pair<uint16_t, uint32_t>>& answers) {
  std::vector<unsigned char> m = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, static_cast<unsigned char>(answers.size()), 0, 0, 0, 0};
  for (const char* label : {"_x", "_tcp", "test"}) {
    m.push_back(static_cast<unsigned char>(strlen(label)));
    m.insert(m.end(), label, label + strlen(label));
  }
  m.insert(m.end(), {0, 0, 33, 0, 1});
  for (auto [type, ttl] : answers) {
    m.insert(m.end(), {0xc0, 12});  // the question's name, compressed
    m.insert(m.end(), {static_cast<unsigned char>(type >> 8), static_cast<unsigned char>(type), 0, 1});
    for (int shift = 24; shift >= 0; shift -= 8) m.push_back(static_cast<unsigned char>(ttl >> shift));
    m.insert(m.end(), {0, 4, 1, 2, 3, 4});
  }
  return m;
}

TEST(DnsTtl, TheSmallestTtlOfTheAnswersOfOneType) {
  std::vector<unsigned char> m = response({{33, 60}, {33, 30}, {5, 1}, {33, 45}});
  EXPECT_EQ(min_answer_ttl(m.data(), m.size(), 33), 30u);
  EXPECT_EQ(min_answer_ttl(m.data(), m.size(), 5), 1u);
  EXPECT_FALSE(min_answer_ttl(m.data(), m.size(), 1));  // no A answer
  m = response({{33, 0x80000000u}});
  EXPECT_EQ(min_answer_ttl(m.data(), m.size(), 33), 0u);  // RFC 2181: top bit set reads as 0
  // Truncated anywhere: no TTL, no read past the end.
  const std::vector<unsigned char> whole = response({{33, 60}});
  for (size_t n = 0; n < whole.size(); ++n) EXPECT_FALSE(min_answer_ttl(whole.data(), n, 33)) << n;
}

}  // namespace
}  // namespace ringlb::discovery::dns
