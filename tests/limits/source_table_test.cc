#include "server/limits/source_table.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

namespace ringlb::sources {
namespace {

constexpr uint64_t kSecond = 1'000'000'000ULL;

SourceKey v4(const std::string& text) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, text.c_str(), &a.sin_addr);
  return source_key(reinterpret_cast<const sockaddr*>(&a));
}

SourceKey v6(const std::string& text, unsigned prefix = 128) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  inet_pton(AF_INET6, text.c_str(), &a.sin6_addr);
  return source_key(reinterpret_cast<const sockaddr*>(&a), prefix);
}

SourceLimits limits(uint32_t max, uint64_t interval_ns, uint32_t burst, uint32_t capacity) {
  SourceLimits l;
  l.max_connections = max;
  l.interval_ns = interval_ns;
  l.burst = burst;
  l.capacity = capacity;
  return l;
}

TEST(SourceKey, Ipv4AndItsMappedIpv6AreOneSourceAndPortsDoNotMatter) {
  EXPECT_EQ(v4("10.1.2.3"), v6("::ffff:10.1.2.3"));
  EXPECT_FALSE(v4("10.1.2.3") == v4("10.1.2.4"));
  EXPECT_FALSE(v6("2001:db8::1") == v6("2001:db8::2"));
  sockaddr_in a{}, b{};
  a.sin_family = b.sin_family = AF_INET;
  a.sin_addr.s_addr = b.sin_addr.s_addr = htonl(0x7f000001);
  a.sin_port = htons(1);
  b.sin_port = htons(2);
  EXPECT_EQ(source_key(reinterpret_cast<sockaddr*>(&a)), source_key(reinterpret_cast<sockaddr*>(&b)));
}

TEST(SourceKey, Ipv6IsCutToItsPrefixButMappedIpv4StaysWhole) {
  EXPECT_EQ(v6("2001:db8:1:2::1", 64), v6("2001:db8:1:2:ffff:ffff:ffff:ffff", 64));
  EXPECT_FALSE(v6("2001:db8:1:2::1", 64) == v6("2001:db8:1:3::1", 64));
  EXPECT_EQ(v6("2001:db8:1:2::1", 48), v6("2001:db8:1:ff::1", 48));
  EXPECT_FALSE(v6("2001:db8:1:2::1", 48) == v6("2001:db8:2:2::1", 48));
  EXPECT_EQ(v6("2001:db8::1:0", 112), v6("2001:db8::1:ffff", 112));
  EXPECT_FALSE(v6("2001:db8::1:0", 112) == v6("2001:db8::2:0", 112));
  EXPECT_EQ(v6("::", 0), v6("ffff::1", 0));
  EXPECT_FALSE(v6("::ffff:10.1.2.3", 64) == v6("::ffff:10.1.2.4", 64)) << "an IPv4 client is one host";
  EXPECT_EQ(v6("::ffff:10.1.2.3", 64), v4("10.1.2.3"));
}

TEST(SourceTable, CapsLiveConnectionsPerSourceExactly) {
  SourceTable t(limits(3, 0, 1, 100));
  const SourceKey a = v4("127.0.0.2"), b = v4("127.0.0.3");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(t.acquire(a, 0), Admission::kAdmitted);
  EXPECT_EQ(t.acquire(a, 0), Admission::kTooMany);
  EXPECT_EQ(t.acquire(b, 0), Admission::kAdmitted);  // another source is not affected
  EXPECT_EQ(t.connections(a), 3u);
  t.release(a);
  EXPECT_EQ(t.acquire(a, 0), Admission::kAdmitted);
  EXPECT_EQ(t.acquire(a, 0), Admission::kTooMany);
  EXPECT_EQ(t.connections(a), 3u);
}

TEST(SourceTable, TokenBucketTakesTheBurstThenOneAnIntervalAndRefills) {
  // 10/s with a burst of 5: 5 at once, then one every 100 ms.
  SourceTable t(limits(0, kSecond / 10, 5, 100));
  const SourceKey a = v4("127.0.0.2");
  uint64_t now = 1000 * kSecond;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(t.acquire(a, now), Admission::kAdmitted) << i;
  EXPECT_EQ(t.acquire(a, now), Admission::kTooFast);
  EXPECT_EQ(t.acquire(a, now + kSecond / 10 - 1), Admission::kTooFast);
  EXPECT_EQ(t.acquire(a, now + kSecond / 10), Admission::kAdmitted);
  EXPECT_EQ(t.acquire(a, now + kSecond / 10), Admission::kTooFast);
  // Refused attempts take no token: after a whole second the bucket is full again, no more.
  now += 2 * kSecond;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(t.acquire(a, now), Admission::kAdmitted) << i;
  EXPECT_EQ(t.acquire(a, now), Admission::kTooFast);
  // Closing connections gives no tokens back: the rate is of new connections.
  for (int i = 0; i < 11; ++i) t.release(a);
  EXPECT_EQ(t.acquire(a, now), Admission::kTooFast);
}

TEST(SourceTable, ClockGoingBackALittleOnlyMakesTheBucketLookFuller) {
  SourceTable t(limits(0, kSecond, 1, 10));
  const SourceKey a = v4("127.0.0.2");
  EXPECT_EQ(t.acquire(a, 5 * kSecond), Admission::kAdmitted);
  EXPECT_EQ(t.acquire(a, 5 * kSecond - 1000), Admission::kTooFast);  // another worker's older clock
  EXPECT_EQ(t.acquire(a, 6 * kSecond), Admission::kAdmitted);
}

TEST(SourceTable, ConnectionLimitIsCheckedBeforeTheBucketAndTakesNoToken) {
  SourceTable t(limits(1, kSecond, 2, 10));
  const SourceKey a = v4("127.0.0.2");
  EXPECT_EQ(t.acquire(a, 0), Admission::kAdmitted);
  EXPECT_EQ(t.acquire(a, 0), Admission::kTooMany);
  t.release(a);
  EXPECT_EQ(t.acquire(a, 0), Admission::kAdmitted);  // the second token is still there
  t.release(a);
  EXPECT_EQ(t.acquire(a, 0), Admission::kTooFast);
}

TEST(SourceTable, EvictsTheLeastRecentlyUsedIdleSourceAtItsCapacity) {
  SourceTable t(limits(0, kSecond, 1, 3));
  const SourceKey a = v4("127.0.0.2"), b = v4("127.0.0.3"), c = v4("127.0.0.4"), d = v4("127.0.0.5");
  for (const SourceKey& k : {a, b, c}) {
    EXPECT_EQ(t.acquire(k, 0), Admission::kAdmitted);
    t.release(k);
  }
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.evictions(), 0u);
  EXPECT_EQ(t.acquire(a, 0), Admission::kTooFast);  // a is now the most recently seen
  EXPECT_EQ(t.acquire(d, 0), Admission::kAdmitted);  // evicts b, the least recently seen
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.evictions(), 1u);
  EXPECT_EQ(t.acquire(c, 0), Admission::kTooFast);  // c kept its (empty) bucket
  EXPECT_EQ(t.acquire(b, 0), Admission::kAdmitted);  // b was forgotten: a full bucket again
  EXPECT_EQ(t.evictions(), 2u);
}

TEST(SourceTable, NeverEvictsASourceWithLiveConnections) {
  SourceTable t(limits(2, 0, 1, 2));
  const SourceKey a = v4("127.0.0.2"), b = v4("127.0.0.3"), c = v4("127.0.0.4");
  EXPECT_EQ(t.acquire(a, 0), Admission::kAdmitted);
  EXPECT_EQ(t.acquire(b, 0), Admission::kAdmitted);
  EXPECT_EQ(t.acquire(c, 0), Admission::kTableFull);  // a and b are live: their counts must stay
  EXPECT_EQ(t.evictions(), 0u);
  t.release(b);
  EXPECT_EQ(t.acquire(c, 0), Admission::kAdmitted);  // b was idle: evicted for c
  EXPECT_EQ(t.evictions(), 1u);
  EXPECT_EQ(t.acquire(a, 0), Admission::kAdmitted);
  EXPECT_EQ(t.acquire(a, 0), Admission::kTooMany);  // a's count survived it all
}

TEST(SourceTable, ShrinkingEvictsIdleSourcesAndKeepsLiveOnes) {
  SourceTable t(limits(0, kSecond, 1, 10));
  for (int i = 0; i < 10; ++i) {
    const SourceKey k = v4("127.0.1." + std::to_string(i));
    EXPECT_EQ(t.acquire(k, 0), Admission::kAdmitted);
    if (i >= 2) t.release(k);  // .0 and .1 stay live
  }
  t.configure(limits(0, kSecond, 1, 1));
  EXPECT_EQ(t.size(), 2u);  // above the new capacity until a live source closes
  EXPECT_EQ(t.evictions(), 8u);
  EXPECT_EQ(t.acquire(v4("127.0.2.1"), 0), Admission::kTableFull);
  t.release(v4("127.0.1.0"));
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.connections(v4("127.0.1.1")), 1u);
}

TEST(SourceTable, ReleaseOfAnUnknownSourceChangesNothing) {
  SourceTable t(limits(1, 0, 1, 4));
  t.release(v4("127.0.0.9"));
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.acquire(v4("127.0.0.9"), 0), Admission::kAdmitted);
  t.release(v4("127.0.0.9"));
  t.release(v4("127.0.0.9"));  // once too often: no underflow
  EXPECT_EQ(t.connections(v4("127.0.0.9")), 0u);
  EXPECT_EQ(t.acquire(v4("127.0.0.9"), 0), Admission::kAdmitted);
  EXPECT_EQ(t.acquire(v4("127.0.0.9"), 0), Admission::kTooMany);
}

TEST(SourceTable, ManySourcesStayWithinTheCapacity) {
  SourceTable t(limits(0, kSecond, 1, 1000));
  for (uint32_t i = 0; i < 100000; ++i) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x0a000000 + i);
    const SourceKey k = source_key(reinterpret_cast<sockaddr*>(&a));
    ASSERT_EQ(t.acquire(k, 0), Admission::kAdmitted);
    t.release(k);
  }
  EXPECT_EQ(t.size(), 1000u);
  EXPECT_EQ(t.evictions(), 99000u);
}

}  // namespace
}  // namespace ringlb::sources
