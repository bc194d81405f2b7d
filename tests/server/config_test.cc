#include "server/config/config.h"

#include <gtest/gtest.h>

namespace ringlb {
namespace {

TEST(Duration, Units) {
  Millis d{};
  std::string err;
  ASSERT_TRUE(parse_duration("250ms", &d, &err));
  EXPECT_EQ(d.count(), 250);
  ASSERT_TRUE(parse_duration("5s", &d, &err));
  EXPECT_EQ(d.count(), 5000);
  ASSERT_TRUE(parse_duration("1m", &d, &err));
  EXPECT_EQ(d.count(), 60000);
  ASSERT_TRUE(parse_duration("2h", &d, &err));
  EXPECT_EQ(d.count(), 7'200'000);
  EXPECT_FALSE(parse_duration("5", &d, &err));
  EXPECT_NE(err.find("unit"), std::string::npos);
  EXPECT_FALSE(parse_duration("5days", &d, &err));
  EXPECT_FALSE(parse_duration("ms", &d, &err));
  EXPECT_FALSE(parse_duration("-1s", &d, &err));
}

TEST(Address, Ipv4AndIpv6) {
  Address a;
  std::string err;
  ASSERT_TRUE(parse_address("127.0.0.1:8080", &a, &err));
  EXPECT_EQ(a.family(), AF_INET);
  EXPECT_EQ(a.port(), 8080);
  EXPECT_EQ(a.to_string(), "127.0.0.1:8080");
  ASSERT_TRUE(parse_address("[::1]:443", &a, &err));
  EXPECT_EQ(a.family(), AF_INET6);
  EXPECT_EQ(a.to_string(), "[::1]:443");
  EXPECT_FALSE(parse_address("::1:443", &a, &err));
  EXPECT_FALSE(parse_address("127.0.0.1", &a, &err));
  EXPECT_FALSE(parse_address("127.0.0.1:65536", &a, &err));
  EXPECT_NE(err.find("out of range"), std::string::npos);
  EXPECT_FALSE(parse_address("[::1]443", &a, &err));
  EXPECT_FALSE(parse_address("example.com:80", &a, &err));
}

TEST(Backend, Settings) {
  BackendConfig b;
  std::string err;
  ASSERT_TRUE(parse_backend("127.0.0.1:80,weight=5,max-connections=10,backup", &b, &err)) << err;
  EXPECT_EQ(b.weight, 5u);
  EXPECT_EQ(b.max_connections, 10u);
  EXPECT_TRUE(b.backup);
  EXPECT_EQ(b.text, "127.0.0.1:80");
  EXPECT_EQ(b.proxy_protocol, ProxyProtocol::kNone);
  EXPECT_FALSE(parse_backend("127.0.0.1:80,weight=", &b, &err));
  EXPECT_FALSE(parse_backend("127.0.0.1:0", &b, &err));
}

TEST(Config, ListenAcceptProxy) {
  const char* argv[] = {"ringlb", "--listen", "127.0.0.1:1,accept-proxy", "--listen", "[::1]:2",
                        "--backend", "127.0.0.1:3"};
  Config c;
  std::string message;
  ASSERT_EQ(parse_config(7, argv, &c, &message), ParseStatus::kRun) << message;
  ASSERT_EQ(c.listen.size(), 2u);
  EXPECT_EQ(c.listen[0].address.to_string(), "127.0.0.1:1");
  EXPECT_TRUE(c.listen[0].accept_proxy);
  EXPECT_FALSE(c.listen[1].accept_proxy);
  const char* bad[] = {"ringlb", "--listen", "127.0.0.1:1,accept-proxy-v2", "--backend", "127.0.0.1:3"};
  EXPECT_EQ(parse_config(5, bad, &c, &message), ParseStatus::kError);
  EXPECT_NE(message.find("'accept-proxy-v2'"), std::string::npos) << message;
}

TEST(Config, ListenV6only) {
  const char* argv[] = {"ringlb", "--listen", "[::]:1,v6only,accept-proxy", "--listen", "[::]:2",
                        "--backend", "127.0.0.1:3"};
  Config c;
  std::string message;
  ASSERT_EQ(parse_config(7, argv, &c, &message), ParseStatus::kRun) << message;
  ASSERT_EQ(c.listen.size(), 2u);
  EXPECT_TRUE(c.listen[0].v6only);
  EXPECT_TRUE(c.listen[0].accept_proxy);
  EXPECT_FALSE(c.listen[1].v6only);  // dual-stack by default
  const char* v4[] = {"ringlb", "--listen", "0.0.0.0:1,v6only", "--backend", "127.0.0.1:3"};
  EXPECT_EQ(parse_config(5, v4, &c, &message), ParseStatus::kError);
  EXPECT_NE(message.find("needs an IPv6 address"), std::string::npos) << message;
}

TEST(Backend, UnixSocket) {
  BackendConfig b;
  std::string err;
  ASSERT_TRUE(parse_backend("unix:/run/app.sock,weight=3", &b, &err)) << err;
  EXPECT_EQ(b.address.family(), AF_UNIX);
  EXPECT_EQ(b.address.to_string(), "unix:/run/app.sock");
  EXPECT_EQ(b.text, "unix:/run/app.sock");
  EXPECT_EQ(b.weight, 3u);
  EXPECT_FALSE(parse_backend("unix:run/app.sock", &b, &err));
  EXPECT_NE(err.find("absolute"), std::string::npos) << err;
  EXPECT_FALSE(parse_backend("unix:/" + std::string(120, 'x'), &b, &err));
  EXPECT_FALSE(parse_backend("unix:", &b, &err));
  // Listeners stay TCP.
  Address a;
  EXPECT_FALSE(parse_address("unix:/run/app.sock", &a, &err));
}

TEST(Backend, SendProxy) {
  BackendConfig b;
  std::string err;
  ASSERT_TRUE(parse_backend("127.0.0.1:80,send-proxy", &b, &err)) << err;
  EXPECT_EQ(b.proxy_protocol, ProxyProtocol::kV1);
  ASSERT_TRUE(parse_backend("[::1]:80,weight=2,send-proxy-v2", &b, &err)) << err;
  EXPECT_EQ(b.proxy_protocol, ProxyProtocol::kV2);
  EXPECT_FALSE(parse_backend("127.0.0.1:80,send-proxy-v3", &b, &err));
  EXPECT_NE(err.find("'send-proxy-v3'"), std::string::npos) << err;
}

TEST(Config, CommandLine) {
  const char* argv[] = {"ringlb", "--listen", "127.0.0.1:1", "--listen", "[::1]:2", "--backend",
                        "127.0.0.1:3,weight=2", "--workers", "3", "--drain-timeout", "1m",
                        "--metrics-listen", "none"};
  Config c;
  std::string msg;
  ASSERT_EQ(parse_config(std::size(argv), argv, &c, &msg), ParseStatus::kRun) << msg;
  ASSERT_EQ(c.listen.size(), 2u);
  EXPECT_EQ(c.listen[1].address.to_string(), "[::1]:2");
  EXPECT_FALSE(c.listen[1].accept_proxy);
  EXPECT_EQ(c.backends.at(0).weight, 2u);
  EXPECT_EQ(c.workers, 3u);
  EXPECT_EQ(c.drain_timeout.count(), 60000);
  EXPECT_FALSE(c.metrics_enabled);
}

TEST(Config, AccessLogFormat) {
  Config c;
  std::string msg;
  const char* plain[] = {"ringlb", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2"};
  ASSERT_EQ(parse_config(std::size(plain), plain, &c, &msg), ParseStatus::kRun) << msg;
  EXPECT_EQ(c.access_log_format, AccessLogFormat::kLogfmt);
  for (const char* format : {"json", "logfmt"}) {
    const char* argv[] = {"ringlb", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2",
                          "--access-log", "-", "--access-log-format", format};
    ASSERT_EQ(parse_config(std::size(argv), argv, &c, &msg), ParseStatus::kRun) << msg;
    EXPECT_EQ(c.access_log_format,
              format[0] == 'j' ? AccessLogFormat::kJson : AccessLogFormat::kLogfmt);
  }
  const char* bad[] = {"ringlb", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2",
                       "--access-log-format", "JSON"};
  ASSERT_EQ(parse_config(std::size(bad), bad, &c, &msg), ParseStatus::kError);
  EXPECT_EQ(msg, "invalid value 'JSON' for --access-log-format: expected logfmt or json");
}

}  // namespace
}  // namespace ringlb
