// The UDP flow table: flows keyed by the 4-tuple (and the backend, per datagram), counted both
// ways, found by their upstream slot, ended least recently active first at max-flows, expired
// when idle in the same order; a model check over random operations; and the memory a flow
// takes with 100,000 of them (the number flow_table.h gives).
#include "server/udp/flow_table.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdio>
#include <list>
#include <map>
#include <memory>
#include <random>
#include <vector>

namespace ringlb::udp {
namespace {

constexpr uint64_t kSecond = 1'000'000'000;

sockaddr_storage v4(const char* ip, uint16_t port) {
  sockaddr_storage s{};
  auto* in = reinterpret_cast<sockaddr_in*>(&s);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  inet_pton(AF_INET, ip, &in->sin_addr);
  return s;
}

sockaddr_storage v6(const char* ip, uint16_t port) {
  sockaddr_storage s{};
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&s);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  inet_pton(AF_INET6, ip, &in6->sin6_addr);
  return s;
}

const sockaddr* sa(const sockaddr_storage& s) { return reinterpret_cast<const sockaddr*>(&s); }

FlowKey key(const char* client, uint16_t port, const char* local = "10.0.0.1", uint16_t local_port = 53) {
  const sockaddr_storage c = v4(client, port), l = v4(local, local_port);
  FlowKey k;
  EXPECT_TRUE(flow_key(sa(c), sa(l), &k));
  return k;
}

// The n-th client of a large table: 10.x.y.z, port from n.
FlowKey nth(uint32_t n) {
  FlowKey k;
  k.client.addr[10] = k.client.addr[11] = 0xff;
  k.client.addr[12] = 10;
  k.client.addr[13] = static_cast<uint8_t>(n >> 16);
  k.client.addr[14] = static_cast<uint8_t>(n >> 8);
  k.client.addr[15] = static_cast<uint8_t>(n);
  k.client.port = static_cast<uint16_t>(1024 + n % 60000);
  k.local = key("10.0.0.1", 1).local;
  k.local.port = 53;
  return k;
}

TEST(FlowKey, TheFourTupleAndBothFamilies) {
  EXPECT_EQ(key("192.0.2.1", 1000), key("192.0.2.1", 1000));
  EXPECT_NE(key("192.0.2.1", 1000), key("192.0.2.1", 1001)) << "another client port";
  EXPECT_NE(key("192.0.2.1", 1000), key("192.0.2.2", 1000)) << "another client address";
  EXPECT_NE(key("192.0.2.1", 1000, "10.0.0.1"), key("192.0.2.1", 1000, "10.0.0.2")) << "another local address";
  EXPECT_NE(key("192.0.2.1", 1000, "10.0.0.1", 53), key("192.0.2.1", 1000, "10.0.0.1", 54)) << "another local port";

  // A dual-stack listener's IPv4 client (::ffff:a.b.c.d) is the same endpoint as an IPv4 one.
  const sockaddr_storage mapped = v6("::ffff:192.0.2.1", 1000), plain = v4("192.0.2.1", 1000), local = v4("10.0.0.1", 53);
  FlowKey a, b;
  ASSERT_TRUE(flow_key(sa(mapped), sa(local), &a));
  ASSERT_TRUE(flow_key(sa(plain), sa(local), &b));
  EXPECT_EQ(a.client, b.client);
  EXPECT_NE(a, b) << "but each keeps its family, to answer in it";
  EXPECT_EQ(to_string(a.client, AF_INET6), "[::ffff:192.0.2.1]:1000");
  EXPECT_EQ(to_string(b.client, AF_INET), "192.0.2.1:1000");

  sockaddr_storage back{};
  ASSERT_EQ(to_sockaddr(b.client, AF_INET, &back), sizeof(sockaddr_in));
  EXPECT_EQ(memcmp(&back, &plain, sizeof(sockaddr_in)), 0);
  const sockaddr_storage six = v6("2001:db8::7", 5353);
  FlowKey k6;
  ASSERT_TRUE(flow_key(sa(six), sa(v6("2001:db8::1", 53)), &k6));
  ASSERT_EQ(to_sockaddr(k6.client, AF_INET6, &back), sizeof(sockaddr_in6));
  EXPECT_EQ(memcmp(&back, &six, sizeof(sockaddr_in6)), 0);
  EXPECT_EQ(to_string(k6.client, AF_INET6), "[2001:db8::7]:5353");

  sockaddr_storage unix_addr{};
  unix_addr.ss_family = AF_UNIX;
  EXPECT_FALSE(flow_key(sa(unix_addr), sa(local), &a));
}

TEST(FlowTable, CountsBothWaysAndReplies) {
  FlowTable t(10, 30 * kSecond);
  const FlowTable::Added a = t.add(key("192.0.2.1", 1000), 4, 100);
  ASSERT_NE(a.id, FlowTable::kNone);
  EXPECT_FALSE(a.evicted);
  EXPECT_EQ(t.find(key("192.0.2.1", 1000)), a.id);
  EXPECT_EQ(t.find(key("192.0.2.1", 1001)), FlowTable::kNone);
  t.client_datagram(a.id, 40, 200);
  t.client_datagram(a.id, 60, 300);
  EXPECT_EQ(t.backend_datagram(a.id, 500, 400), 1u);
  EXPECT_EQ(t.backend_datagram(a.id, 20, 500), 2u);
  const Flow& f = t.get(a.id);
  EXPECT_EQ(f.backend, 4u);
  EXPECT_EQ(f.datagrams_in, 2u);
  EXPECT_EQ(f.bytes_in, 100u);
  EXPECT_EQ(f.datagrams_out, 2u);
  EXPECT_EQ(f.bytes_out, 520u);
  EXPECT_EQ(f.replies, 2u);
  EXPECT_EQ(f.created_ns, 100u);
  EXPECT_EQ(f.last_ns, 500u);
  const Flow gone = t.remove(a.id);
  EXPECT_EQ(gone.bytes_out, 520u);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.find(key("192.0.2.1", 1000)), FlowTable::kNone);
}

TEST(FlowTable, RepliesFindTheirFlowByItsUpstreamSlot) {
  FlowTable t(10, kSecond);
  const uint32_t a = t.add(key("192.0.2.1", 1000), 0, 1).id;
  const uint32_t b = t.add(key("192.0.2.2", 1000), 1, 1).id;
  EXPECT_EQ(t.find_upstream(7), FlowTable::kNone);
  t.set_upstream(a, 7);
  t.set_upstream(b, 300);
  EXPECT_EQ(t.find_upstream(7), a);
  EXPECT_EQ(t.find_upstream(300), b);
  EXPECT_EQ(t.find_upstream(-1), FlowTable::kNone);
  t.set_upstream(a, 8);  // a new socket (the old one failed)
  EXPECT_EQ(t.find_upstream(7), FlowTable::kNone);
  EXPECT_EQ(t.find_upstream(8), a);
  EXPECT_EQ(t.remove(b).upstream, 300);
  EXPECT_EQ(t.find_upstream(300), FlowTable::kNone) << "an ended flow's slot leads nowhere";
  const uint32_t c = t.add(key("192.0.2.3", 1000), 1, 2).id;
  t.set_upstream(c, 300);  // the slot, reused
  EXPECT_EQ(t.find_upstream(300), c);
}

TEST(FlowTable, AtMaxFlowsTheLeastRecentlyActiveFlowEnds) {
  FlowTable t(3, 30 * kSecond);
  const uint32_t a = t.add(key("192.0.2.1", 1), 0, 10).id;
  const uint32_t b = t.add(key("192.0.2.2", 1), 0, 20).id;
  t.add(key("192.0.2.3", 1), 0, 30);
  t.set_upstream(b, 42);
  t.client_datagram(a, 10, 40);  // a is the most recent now; b the least
  const FlowTable::Added d = t.add(key("192.0.2.4", 1), 0, 50);
  ASSERT_TRUE(d.evicted);
  EXPECT_EQ(d.evicted_flow.key, key("192.0.2.2", 1));
  EXPECT_EQ(d.evicted_flow.upstream, 42) << "so the caller can close its socket";
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.find(key("192.0.2.2", 1)), FlowTable::kNone);
  EXPECT_EQ(t.find_upstream(42), FlowTable::kNone);
  EXPECT_EQ(t.find(key("192.0.2.1", 1)), a);
  EXPECT_EQ(d.id, b) << "the evicted flow's slot is reused";
  const FlowTable::Added e = t.add(key("192.0.2.5", 1), 0, 60);
  EXPECT_EQ(e.evicted_flow.key, key("192.0.2.3", 1));
}

TEST(FlowTable, IdleFlowsExpireLeastRecentFirstAtTheirDeadline) {
  FlowTable t(100, 30 * kSecond);
  EXPECT_EQ(t.next_deadline(), UINT64_MAX);
  const uint32_t a = t.add(key("192.0.2.1", 1), 0, 1 * kSecond).id;
  t.add(key("192.0.2.2", 1), 0, 2 * kSecond);
  t.add(key("192.0.2.3", 1), 0, 3 * kSecond);
  EXPECT_EQ(t.next_deadline(), 31 * kSecond);
  t.backend_datagram(a, 1, 10 * kSecond);  // a reply keeps a flow alive too
  EXPECT_EQ(t.next_deadline(), 32 * kSecond);
  std::vector<FlowKey> ended;
  auto note = [&](const Flow& f) { ended.push_back(f.key); };
  EXPECT_EQ(t.expire(32 * kSecond - 1, note), 0u);
  EXPECT_EQ(t.expire(33 * kSecond, note), 2u);
  EXPECT_EQ(ended, (std::vector<FlowKey>{key("192.0.2.2", 1), key("192.0.2.3", 1)}));
  EXPECT_EQ(t.next_deadline(), 40 * kSecond);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.expire(UINT64_MAX - 40 * kSecond, note), 1u);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.next_deadline(), UINT64_MAX);
}

TEST(FlowTable, AClockThatStepsBackKeepsTheOrder) {
  FlowTable t(100, 10);
  const uint32_t a = t.add(key("192.0.2.1", 1), 0, 1000).id;
  const uint32_t b = t.add(key("192.0.2.2", 1), 0, 900).id;  // an earlier reading from another clock
  EXPECT_EQ(t.get(b).last_ns, 1000u);
  t.client_datagram(a, 1, 950);
  EXPECT_EQ(t.get(a).last_ns, 1000u);
  EXPECT_EQ(t.next_deadline(), 1010u);
}

TEST(FlowTable, AnEndedFlowsIdIsNotTheFlowThatReusesIt) {
  FlowTable t(10, kSecond);
  const uint32_t a = t.add(key("192.0.2.1", 1), 0, 1).id;
  const uint32_t generation = t.get(a).generation;
  EXPECT_TRUE(t.live(a, generation));
  t.remove(a);
  EXPECT_FALSE(t.live(a, generation));
  const uint32_t b = t.add(key("192.0.2.9", 1), 0, 2).id;
  ASSERT_EQ(b, a);
  EXPECT_FALSE(t.live(a, generation)) << "a late completion for the old flow finds another";
  EXPECT_TRUE(t.live(b, t.get(b).generation));
  EXPECT_FALSE(t.live(12345, 1));
}

TEST(FlowTable, PerDatagramBalancingKeepsAFlowPerClientAndBackend) {
  FlowTable t(10, kSecond);
  FlowKey to_0 = key("192.0.2.1", 1), to_1 = to_0;
  to_0.backend_key = 0;
  to_1.backend_key = 1;
  const uint32_t a = t.add(to_0, 0, 1).id, b = t.add(to_1, 1, 1).id;
  EXPECT_NE(a, b);
  EXPECT_EQ(t.find(to_0), a);
  EXPECT_EQ(t.find(to_1), b);
  EXPECT_EQ(t.find(key("192.0.2.1", 1)), FlowTable::kNone);
}

TEST(FlowTable, AReloadsSmallerBoundEndsTheLeastRecentFlows) {
  FlowTable t(10, kSecond);
  for (uint32_t i = 0; i < 10; ++i) t.add(nth(i), 0, i);
  std::vector<FlowKey> ended;
  EXPECT_EQ(t.configure(4, 5 * kSecond, [&](const Flow& f) { ended.push_back(f.key); }), 6u);
  EXPECT_EQ(t.size(), 4u);
  ASSERT_EQ(ended.size(), 6u);
  EXPECT_EQ(ended.front(), nth(0));
  EXPECT_EQ(ended.back(), nth(5));
  EXPECT_EQ(t.idle_ns(), 5 * kSecond);
  EXPECT_TRUE(t.add(nth(20), 0, 20).evicted);
}

TEST(FlowTable, ListsFlowsMostRecentFirst) {
  FlowTable t(10, kSecond);
  const uint32_t a = t.add(key("192.0.2.1", 1), 0, 1).id;
  t.add(key("192.0.2.2", 1), 0, 2);
  t.client_datagram(a, 1, 3);
  std::vector<FlowKey> order;
  t.for_each([&](uint32_t, const Flow& f) { order.push_back(f.key); });
  EXPECT_EQ(order, (std::vector<FlowKey>{key("192.0.2.1", 1), key("192.0.2.2", 1)}));
}

// The table against a plain model (a map and a list in recency order) over random operations.
TEST(FlowTable, AgreesWithAModelOverRandomOperations) {
  constexpr uint32_t kMax = 64;
  constexpr uint64_t kIdle = 1000;
  FlowTable t(kMax, kIdle);
  std::list<uint32_t> recency;               // client numbers, most recent first
  std::map<uint32_t, uint64_t> last;          // client -> last activity
  std::mt19937 rng(42);
  uint64_t now = 0;
  for (int step = 0; step < 200000; ++step) {
    now += rng() % 20;
    const uint32_t client = rng() % 200;
    const uint32_t id = t.find(nth(client));
    ASSERT_EQ(id != FlowTable::kNone, last.count(client) == 1) << step;
    const int op = static_cast<int>(rng() % 10);
    if (id == FlowTable::kNone) {
      const FlowTable::Added added = t.add(nth(client), client, now);
      if (last.size() == kMax) {
        ASSERT_TRUE(added.evicted);
        ASSERT_EQ(added.evicted_flow.key, nth(recency.back()));
        last.erase(recency.back());
        recency.pop_back();
      } else {
        ASSERT_FALSE(added.evicted);
      }
      recency.push_front(client);
      last[client] = now;
    } else if (op < 7) {
      (op < 4 ? t.client_datagram(id, 1, now) : static_cast<void>(t.backend_datagram(id, 1, now)));
      recency.remove(client);
      recency.push_front(client);
      last[client] = now;
    } else if (op == 7) {
      t.remove(id);
      recency.remove(client);
      last.erase(client);
    } else {
      std::vector<uint32_t> expired;
      t.expire(now, [&](const Flow& f) { expired.push_back(f.backend); });
      std::vector<uint32_t> expected;
      while (!recency.empty() && last[recency.back()] + kIdle <= now) {
        expected.push_back(recency.back());
        last.erase(recency.back());
        recency.pop_back();
      }
      ASSERT_EQ(expired, expected) << step;
    }
    ASSERT_EQ(t.size(), last.size());
    ASSERT_EQ(t.next_deadline(), recency.empty() ? UINT64_MAX : last[recency.back()] + kIdle);
  }
}

// Bytes per flow with 100,000 flows: what the heap gave the table (malloc's own count) and what
// the table says it holds. flow_table.h quotes this.
TEST(FlowTable, MemoryPerFlow) {
  constexpr uint32_t kFlows = 100000;
  // Small blocks (uordblks) and the large ones malloc maps on their own (hblkhd).
  const auto heap_now = [] { const struct mallinfo2 m = mallinfo2(); return m.uordblks + m.hblkhd; };
  const size_t before = heap_now();
  auto t = std::make_unique<FlowTable>(kFlows, 30 * kSecond);
  for (uint32_t i = 0; i < kFlows; ++i) {
    const uint32_t id = t->add(nth(i), i % 7, i).id;
    t->set_upstream(id, static_cast<int32_t>(i));  // a connected socket per flow, as the data path has
  }
  ASSERT_EQ(t->size(), kFlows);
  const double heap = static_cast<double>(heap_now() - before) / kFlows;
  const double held = static_cast<double>(t->memory_bytes()) / kFlows;
  printf("flow table: %zu bytes per Flow; %.1f bytes per flow held, %.1f from the heap, with %u flows\n",
         sizeof(Flow), held, heap, kFlows);
  EXPECT_EQ(sizeof(Flow), 120u);
  EXPECT_LE(heap, 132.0);
  EXPECT_LE(held, 132.0);
  // Full: the next flow ends one, and the memory stays.
  EXPECT_TRUE(t->add(nth(kFlows), 0, kFlows).evicted);
  EXPECT_EQ(t->size(), kFlows);
}

}  // namespace
}  // namespace ringlb::udp
