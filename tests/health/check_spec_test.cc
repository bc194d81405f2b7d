#include "server/health/check_spec.h"

#include <gtest/gtest.h>

namespace ringlb::health {
namespace {

TEST(DecodeEscapes, EveryEscapeAndPlainBytes) {
  std::string out, why;
  ASSERT_TRUE(decode_escapes("PING\\r\\n", &out, &why)) << why;
  EXPECT_EQ(out, "PING\r\n");
  ASSERT_TRUE(decode_escapes("a\\tb\\0c\\\\d\\\"e\\x41\\x7f\\xFF", &out, &why)) << why;
  EXPECT_EQ(out, std::string("a\tb\0c\\d\"eA\x7f\xff", 12));
  ASSERT_TRUE(decode_escapes("no escapes", &out, &why));
  EXPECT_EQ(out, "no escapes");
}

TEST(DecodeEscapes, BadEscapesAreRefused) {
  std::string out, why;
  EXPECT_FALSE(decode_escapes("abc\\", &out, &why));
  EXPECT_NE(why.find("trailing backslash"), std::string::npos) << why;
  EXPECT_FALSE(decode_escapes("\\x4", &out, &why));
  EXPECT_FALSE(decode_escapes("\\xg0", &out, &why));
  EXPECT_NE(why.find("two hex digits"), std::string::npos) << why;
  EXPECT_FALSE(decode_escapes("\\q", &out, &why));
  EXPECT_NE(why.find("unknown escape \\q"), std::string::npos) << why;
}

TEST(StatusRanges, ParsedAndMatched) {
  std::vector<StatusRange> r;
  std::string why;
  ASSERT_TRUE(parse_status_ranges("200-399", &r, &why)) << why;
  EXPECT_TRUE(status_allowed(r, 200));
  EXPECT_TRUE(status_allowed(r, 399));
  EXPECT_FALSE(status_allowed(r, 199));
  EXPECT_FALSE(status_allowed(r, 400));
  ASSERT_TRUE(parse_status_ranges("204,300-302,418", &r, &why)) << why;
  EXPECT_EQ(r.size(), 3u);
  for (int s : {204, 300, 301, 302, 418}) EXPECT_TRUE(status_allowed(r, s)) << s;
  for (int s : {200, 203, 205, 303, 417, 419}) EXPECT_FALSE(status_allowed(r, s)) << s;
}

TEST(StatusRanges, BadRangesAreRefused) {
  std::vector<StatusRange> r;
  std::string why;
  for (const char* bad : {"", "399-200", "99", "600", "200-", "-300", "2x0", "200,,300", "200-300-400", " 200"}) {
    EXPECT_FALSE(parse_status_ranges(bad, &r, &why)) << bad;
  }
  parse_status_ranges("399-200", &r, &why);
  EXPECT_NE(why.find("bad status range '399-200'"), std::string::npos) << why;
}

TEST(CheckSettings, KeysValidateTheirValues) {
  CheckSettings s;
  std::string why;
  EXPECT_FALSE(set_check_text("check", "icmp", &s, &why));
  EXPECT_NE(why.find("unknown check type 'icmp'"), std::string::npos) << why;
  EXPECT_TRUE(set_check_text("check", "send-expect", &s, &why));
  EXPECT_EQ(*s.type, CheckType::kSendExpect);
  EXPECT_FALSE(set_check_text("check-expect", std::string(257, 'x'), &s, &why));
  EXPECT_NE(why.find("too long"), std::string::npos) << why;
  EXPECT_TRUE(set_check_text("check-expect", std::string(256, 'x'), &s, &why)) << why;
  EXPECT_FALSE(set_check_text("check-send", std::string(1025, 'x'), &s, &why));
  EXPECT_TRUE(set_check_text("check-send", "PING\\r\\n", &s, &why));
  EXPECT_EQ(*s.send, "PING\r\n");
  EXPECT_FALSE(set_check_text("check-path", "healthz", &s, &why));
  EXPECT_FALSE(set_check_text("check-path", "/a b", &s, &why));
  EXPECT_FALSE(set_check_text("check-method", "get", &s, &why));
  EXPECT_FALSE(set_check_text("check-status", "600", &s, &why));
}

TEST(CheckSettings, BackendOverridesOnlyWhatItSets) {
  CheckSettings cluster, backend;
  std::string why;
  ASSERT_TRUE(set_check_text("check", "http", &cluster, &why));
  ASSERT_TRUE(set_check_text("check-path", "/healthz", &cluster, &why));
  backend.port = 8081;
  ASSERT_TRUE(set_check_text("check-path", "/ready", &backend, &why));
  const CheckSpec spec = cluster.overlaid(backend).resolve();
  EXPECT_EQ(spec.type, CheckType::kHttp);
  EXPECT_EQ(spec.path, "/ready");
  EXPECT_EQ(spec.port, 8081);
  EXPECT_EQ(spec.method, "GET");
  EXPECT_EQ(spec.http_request("10.0.0.5:80"),
            "GET /ready HTTP/1.1\r\nHost: 10.0.0.5:80\r\nConnection: close\r\n"
            "User-Agent: ringlb-health-check\r\nAccept: */*\r\n\r\n");
  EXPECT_EQ(cluster.resolve().path, "/healthz");
}

TEST(CheckSpec, ValidateNeedsWhatTheTypeUses) {
  CheckSpec s;
  s.type = CheckType::kSendExpect;
  ASSERT_TRUE(validate(s));
  EXPECT_STREQ(validate(s)->key, "check");
  EXPECT_EQ(validate(s)->why, "a send-expect check needs check-expect");
  s.expect = "+PONG";
  EXPECT_FALSE(validate(s));
  s.expect_within = 3;
  EXPECT_STREQ(validate(s)->key, "check-expect-within");
  s.expect_within = 64;
  EXPECT_FALSE(validate(s));
  s.sni = "a.example";
  EXPECT_STREQ(validate(s)->key, "check-sni");
  s.type = CheckType::kTls;
  EXPECT_FALSE(validate(s));
}

// A DNS query for example.com (A), as a udp check's check-send writes it in TOML.
constexpr char kDnsQueryText[] =
    "\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x07example\\x03com\\x00\\x00\\x01\\x00\\x01";

TEST(CheckSettings, AUdpCheckWritesADnsQueryWithHexEscapes) {
  CheckSettings s;
  std::string why;
  ASSERT_TRUE(set_check_text("check", "udp", &s, &why)) << why;
  EXPECT_EQ(*s.type, CheckType::kUdp);
  EXPECT_STREQ(check_type_name(CheckType::kUdp), "udp");
  EXPECT_TRUE(uses_datagrams(CheckType::kUdp));
  EXPECT_FALSE(uses_datagrams(CheckType::kSendExpect));
  ASSERT_TRUE(set_check_text("check-send", kDnsQueryText, &s, &why)) << why;
  const std::string query("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07" "example" "\x03" "com"
                          "\x00\x00\x01\x00\x01", 29);
  EXPECT_EQ(*s.send, query);
  EXPECT_EQ(s.send->size(), 29u) << "NULs included";
  ASSERT_TRUE(set_check_text("check-expect", "\\x12\\x34\\x81\\x80", &s, &why)) << why;
  EXPECT_EQ(*s.expect, std::string("\x12\x34\x81\x80", 4));
  EXPECT_FALSE(validate(s.resolve()));
  EXPECT_FALSE(set_check_text("check-send", "\\x1", &s, &why));
  EXPECT_NE(why.find("two hex digits"), std::string::npos) << why;
}

TEST(CheckSpec, AUdpCheckNeedsADatagramToSendButMayExpectAnything) {
  CheckSpec s;
  s.type = CheckType::kUdp;
  ASSERT_TRUE(validate(s));
  EXPECT_STREQ(validate(s)->key, "check");
  EXPECT_EQ(validate(s)->why, "a udp check needs check-send (the datagram it sends)");
  s.send = std::string("\x00", 1);
  EXPECT_FALSE(validate(s)) << "no check-expect: any datagram back passes";
  s.expect = "\x12\x34";
  s.expect_within = 1;
  ASSERT_TRUE(validate(s));
  EXPECT_STREQ(validate(s)->key, "check-expect-within");
  s.expect_within = 512;
  EXPECT_FALSE(validate(s));
}

}  // namespace
}  // namespace ringlb::health
