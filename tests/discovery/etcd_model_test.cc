// The pure parts of etcd discovery, on the JSON gateway's own texts (captured from etcd 3.4):
// base64 and range ends, the range and watch answers, a key's value as a backend, the key map
// that watch events change, and the reconnect backoff.
#include "server/discovery/etcd_model.h"

#include <gtest/gtest.h>

#include "server/discovery/etcd_protocol.h"

namespace ringlb::discovery::etcd {
namespace {

TEST(EtcdProtocol, Base64AndPrefixRangeEnd) {
  EXPECT_EQ(base64_encode("/ringlb/web/"), "L3JpbmdsYi93ZWIv");
  EXPECT_EQ(base64_encode("a"), "YQ==");
  EXPECT_EQ(base64_encode("ab"), "YWI=");
  std::string out;
  ASSERT_TRUE(base64_decode("L3JpbmdsYi93ZWIvYQ==", &out));
  EXPECT_EQ(out, "/ringlb/web/a");
  ASSERT_TRUE(base64_decode("YWI", &out));  // padding left out
  EXPECT_EQ(out, "ab");
  EXPECT_FALSE(base64_decode("a$==", &out));
  EXPECT_FALSE(base64_decode("Y", &out));
  EXPECT_EQ(prefix_range_end("/ringlb/web/"), "/ringlb/web0");
  EXPECT_EQ(prefix_range_end(std::string("a\xff\xff")), "b");
  EXPECT_EQ(prefix_range_end(std::string("\xff")), std::string(1, '\0'));
  EXPECT_EQ(range_request("/w/"), R"({"key":"L3cv","range_end":"L3cw"})");
  EXPECT_EQ(watch_request("/w/", 7), R"({"create_request":{"key":"L3cv","range_end":"L3cw","start_revision":"7"}})");
}

TEST(EtcdProtocol, RangeAnswer) {
  const char kBody[] =
      R"({"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"},)"
      R"("kvs":[{"key":"L3JpbmdsYi93ZWIvYQ==","create_revision":"2","mod_revision":"2","version":"1",)"
      R"("value":"eyJhZGRyZXNzIjoiMTI3LjAuMC4xOjkwMDEifQ=="}],"count":"1"})";
  int64_t revision = 0;
  std::vector<KeyValue> kvs;
  std::string why;
  ASSERT_TRUE(parse_range_response(kBody, &revision, &kvs, &why)) << why;
  EXPECT_EQ(revision, 2);
  ASSERT_EQ(kvs.size(), 1u);
  EXPECT_EQ(kvs[0].key, "/ringlb/web/a");
  EXPECT_EQ(kvs[0].value, R"({"address":"127.0.0.1:9001"})");
  EXPECT_EQ(kvs[0].mod_revision, 2);
  // An empty prefix: no kvs at all (grpc-gateway leaves empty fields out).
  ASSERT_TRUE(parse_range_response(R"({"header":{"revision":"9"}})", &revision, &kvs, &why)) << why;
  EXPECT_EQ(revision, 9);
  EXPECT_TRUE(kvs.empty());
  EXPECT_FALSE(parse_range_response("{\"error\":{\"message\":\"etcdserver: user name is empty\"}}", &revision, &kvs, &why));
  EXPECT_EQ(why, "etcdserver: user name is empty");
  EXPECT_FALSE(parse_range_response("<html>", &revision, &kvs, &why));
  EXPECT_FALSE(parse_range_response(R"({"kvs":[]})", &revision, &kvs, &why));
}

TEST(EtcdProtocol, WatchMessages) {
  WatchMessage m;
  std::string why;
  ASSERT_TRUE(parse_watch_message(R"({"result":{"header":{"revision":"2"},"created":true}})", &m, &why)) << why;
  EXPECT_TRUE(m.created);
  EXPECT_TRUE(m.events.empty());
  // A PUT has no "type" (proto's default, left out); a DELETE has one and no value.
  ASSERT_TRUE(parse_watch_message(
      R"({"result":{"header":{"revision":"4"},"events":[{"kv":{"key":"L3cvYQ==","mod_revision":"3","value":"e30="}},)"
      R"({"type":"DELETE","kv":{"key":"L3cvYg==","mod_revision":"4"}}]}})",
      &m, &why))
      << why;
  ASSERT_EQ(m.events.size(), 2u);
  EXPECT_EQ(m.events[0].type, WatchEvent::Type::kPut);
  EXPECT_EQ(m.events[0].kv.key, "/w/a");
  EXPECT_EQ(m.events[0].kv.value, "{}");
  EXPECT_EQ(m.events[1].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(m.events[1].kv.key, "/w/b");
  EXPECT_EQ(m.events[1].kv.mod_revision, 4);
  ASSERT_TRUE(parse_watch_message(
      R"({"result":{"header":{"revision":"30"},"created":true,"canceled":true,"compact_revision":"25"}})", &m, &why));
  EXPECT_TRUE(m.canceled);
  EXPECT_EQ(m.compact_revision, 25);
  ASSERT_TRUE(parse_watch_message(R"({"error":{"grpc_code":16,"message":"etcdserver: invalid auth token"}})", &m, &why));
  EXPECT_EQ(m.error, "etcdserver: invalid auth token");
  EXPECT_FALSE(parse_watch_message(R"({"result":{"events":[{"type":"MOVE","kv":{}}]}})", &m, &why));
  EXPECT_FALSE(parse_watch_message("{\"result\":{\"events\":[{\"kv\":{\"key\":\"!!\"}}]}}", &m, &why));
  EXPECT_FALSE(parse_watch_message("not json", &m, &why));
}

TEST(EtcdValue, EveryFieldAndItsDefaults) {
  BackendConfig b;
  std::string why;
  ASSERT_TRUE(parse_backend_value(
      R"({"address": "10.0.0.5:80", "weight": 2, "backup": true, "max-connections": 100, "drain": false})", &b, &why))
      << why;
  EXPECT_EQ(b.text, "10.0.0.5:80");
  EXPECT_EQ(b.weight, 2u);
  EXPECT_TRUE(b.backup);
  EXPECT_EQ(b.max_connections, 100u);
  ASSERT_TRUE(parse_backend_value(R"({"address": "[::1]:8080"})", &b, &why)) << why;
  EXPECT_EQ(b.text, "[::1]:8080");
  EXPECT_EQ(b.weight, 1u);
  EXPECT_FALSE(b.backup);
  ASSERT_TRUE(parse_backend_value(R"({"address": "10.0.0.5:80", "weight": 5, "drain": true})", &b, &why));
  EXPECT_EQ(b.weight, 0u);  // drained: kept and checked, no new clients
  EXPECT_EQ(b.text, "10.0.0.5:80");  // the same identity as undrained, so the same backend id
}

TEST(EtcdValue, MalformedValuesSayWhy) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not a JSON object"},
      {"[1]", "not a JSON object"},
      {R"({"weight": 1})", "address is required"},
      {R"({"address": 5})", "address: expected a string"},
      {R"({"address": "db.internal"})", "address: "},
      {R"({"address": "10.0.0.5:0"})", "address: backend port 0 is not connectable"},
      {R"({"address": "10.0.0.5:80,weight=2"})", "address: expected ADDR:PORT"},
      {R"({"address": "10.0.0.5:80", "weight": 1001})", "weight: expected a whole number from 0 to 1000"},
      {R"({"address": "10.0.0.5:80", "weight": -1})", "weight: expected a whole number"},
      {R"({"address": "10.0.0.5:80", "weight": "2"})", "weight: expected a whole number"},
      {R"({"address": "10.0.0.5:80", "backup": "yes"})", "backup: expected true or false"},
      {R"({"address": "10.0.0.5:80", "wieght": 2})", "unknown field 'wieght'"},
  };
  for (const auto& [text, error] : cases) {
    BackendConfig b;
    std::string why;
    EXPECT_FALSE(parse_backend_value(text, &b, &why)) << text;
    EXPECT_EQ(why.rfind(error, 0), 0u) << text << " -> " << why;
  }
}

KeyValue kv(const std::string& key, const std::string& address, int64_t revision, const std::string& extra = "") {
  return {key, "{\"address\": \"" + address + "\"" + extra + "}", revision};
}

std::vector<std::string> names(const PrefixMap& m) {
  std::vector<std::string> out;
  for (const BackendConfig& b : m.backends()) out.push_back(b.text);
  return out;
}

TEST(EtcdPrefixMap, RangeThenEventsInKeyOrderSkippingBadValues) {
  PrefixMap m;
  std::vector<PrefixMap::Bad> bad;
  // Out of order on purpose: the list is by key, whatever order etcd or the events give.
  m.reset({kv("/w/c", "10.0.0.3:80", 3), kv("/w/a", "10.0.0.1:80", 2), {"/w/b", "{oops", 4}}, 4, &bad);
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].key, "/w/b");
  EXPECT_EQ(names(m), (std::vector<std::string>{"10.0.0.1:80", "10.0.0.3:80"}));
  EXPECT_EQ(m.revision(), 4);
  EXPECT_EQ(m.keys(), 3u);

  bad.clear();
  WatchEvent fix{WatchEvent::Type::kPut, kv("/w/b", "10.0.0.2:80", 5)};
  WatchEvent drop{WatchEvent::Type::kDelete, {"/w/a", "", 6}};
  m.apply({fix, drop}, &bad);
  EXPECT_TRUE(bad.empty());
  EXPECT_EQ(names(m), (std::vector<std::string>{"10.0.0.2:80", "10.0.0.3:80"}));
  EXPECT_EQ(m.revision(), 6);

  // A good value turned bad is skipped (and reported); the others stay.
  m.apply({{WatchEvent::Type::kPut, {"/w/c", R"({"address": "nope"})", 7}}}, &bad);
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(names(m), (std::vector<std::string>{"10.0.0.2:80"}));

  // A resumed watch replays events we have: ignored.
  m.apply({{WatchEvent::Type::kDelete, {"/w/b", "", 5}}}, &bad);
  EXPECT_EQ(names(m), (std::vector<std::string>{"10.0.0.2:80"}));

  // The same address under two keys: once, the first key's settings.
  m.apply({{WatchEvent::Type::kPut, kv("/w/a", "10.0.0.2:80", 8, ", \"weight\": 7")}}, &bad);
  ASSERT_EQ(m.backends().size(), 1u);
  EXPECT_EQ(m.backends()[0].weight, 7u);

  // A resync replaces everything.
  m.reset({}, 20, &bad);
  EXPECT_TRUE(m.backends().empty());
  EXPECT_EQ(m.revision(), 20);
}

TEST(EtcdBackoff, DoublesWithJitterUpToTheMaxAndResets) {
  Backoff b(Millis(100), Millis(1000));
  int64_t ceiling = 100;
  for (int i = 0; i < 40; ++i) {
    const Millis d = b.next();
    EXPECT_GE(d.count(), ceiling / 2) << i;
    EXPECT_LE(d.count(), ceiling) << i;
    ceiling = std::min<int64_t>(ceiling * 2, 1000);
  }
  EXPECT_EQ(b.attempts(), 40u);
  b.reset();
  EXPECT_LE(b.next().count(), 100);
  // Two nodes with different seeds do not retry in lockstep.
  Backoff x(Millis(1000), Millis(1000), 1), y(Millis(1000), Millis(1000), 2);
  int same = 0;
  for (int i = 0; i < 20; ++i) same += x.next() == y.next();
  EXPECT_LT(same, 5);
}

}  // namespace
}  // namespace ringlb::discovery::etcd
