#include "server/config/config.h"

#include "server/config/command_line.h"

#include <gtest/gtest.h>

namespace ringlb {
namespace {

// Whether `s` is ok, its message (if any) in *message.
bool ok(const Status& s, std::string* message) {
  *message = s.message();
  return s.ok();
}

TEST(Duration, Units) {
  Millis d{};
  std::string err;
  ASSERT_TRUE(ok(parse_duration("250ms", &d), &err));
  EXPECT_EQ(d.count(), 250);
  ASSERT_TRUE(ok(parse_duration("5s", &d), &err));
  EXPECT_EQ(d.count(), 5000);
  ASSERT_TRUE(ok(parse_duration("1m", &d), &err));
  EXPECT_EQ(d.count(), 60000);
  ASSERT_TRUE(ok(parse_duration("2h", &d), &err));
  EXPECT_EQ(d.count(), 7'200'000);
  EXPECT_FALSE(ok(parse_duration("5", &d), &err));
  EXPECT_NE(err.find("unit"), std::string::npos);
  EXPECT_FALSE(ok(parse_duration("5days", &d), &err));
  EXPECT_FALSE(ok(parse_duration("ms", &d), &err));
  EXPECT_FALSE(ok(parse_duration("-1s", &d), &err));
  // 24 days at most: every duration fits the int32 milliseconds it may be stored in.
  ASSERT_TRUE(ok(parse_duration("576h", &d), &err)) << err;
  EXPECT_EQ(d, limits::kMaxDuration);
  EXPECT_FALSE(ok(parse_duration("577h", &d), &err));
  EXPECT_NE(err.find("24 days"), std::string::npos) << err;
  EXPECT_FALSE(ok(parse_duration("2073600001ms", &d), &err));
  EXPECT_FALSE(ok(parse_duration("1099511627776h", &d), &err));  // 2^40 h: no wrap into range
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
  ASSERT_TRUE(ok(parse_backend("127.0.0.1:80,weight=5,max-connections=10,backup", &b), &err)) << err;
  EXPECT_EQ(b.weight, 5u);
  EXPECT_EQ(b.max_connections, 10u);
  EXPECT_TRUE(b.backup);
  EXPECT_EQ(b.text, "127.0.0.1:80");
  EXPECT_EQ(b.proxy_protocol, ProxyProtocol::kNone);
  EXPECT_FALSE(ok(parse_backend("127.0.0.1:80,weight=", &b), &err));
  ASSERT_TRUE(ok(parse_backend("127.0.0.1:80,weight=0", &b), &err)) << err;  // drained
  EXPECT_EQ(b.weight, 0u);
  ASSERT_TRUE(ok(parse_backend("127.0.0.1:80,weight=1000", &b), &err)) << err;
  EXPECT_FALSE(ok(parse_backend("127.0.0.1:80,weight=1001", &b), &err));
  EXPECT_FALSE(ok(parse_backend("127.0.0.1:80,weight=4294967297", &b), &err));  // 2^32 + 1: no wrap
  EXPECT_FALSE(ok(parse_backend("127.0.0.1:80,max-connections=1000001", &b), &err));
  EXPECT_FALSE(ok(parse_backend("127.0.0.1:0", &b), &err));
}

TEST(Config, ListenAcceptProxy) {
  const char* argv[] = {"ringlb", "--listen", "127.0.0.1:1,accept-proxy", "--listen", "[::1]:2",
                        "--backend", "127.0.0.1:3"};
  Config c;
  std::string message;
  ASSERT_TRUE(ok(parse_config(7, argv, &c), &message)) << message;
  ASSERT_EQ(c.listen.size(), 2u);
  EXPECT_EQ(c.listen[0].address.to_string(), "127.0.0.1:1");
  EXPECT_TRUE(c.listen[0].accept_proxy);
  EXPECT_FALSE(c.listen[1].accept_proxy);
  const char* bad[] = {"ringlb", "--listen", "127.0.0.1:1,accept-proxy-v2", "--backend", "127.0.0.1:3"};
  EXPECT_FALSE(ok(parse_config(5, bad, &c), &message));
  EXPECT_NE(message.find("'accept-proxy-v2'"), std::string::npos) << message;
}

TEST(Config, ListenV6only) {
  const char* argv[] = {"ringlb", "--listen", "[::]:1,v6only,accept-proxy", "--listen", "[::]:2",
                        "--backend", "127.0.0.1:3"};
  Config c;
  std::string message;
  ASSERT_TRUE(ok(parse_config(7, argv, &c), &message)) << message;
  ASSERT_EQ(c.listen.size(), 2u);
  EXPECT_TRUE(c.listen[0].v6only);
  EXPECT_TRUE(c.listen[0].accept_proxy);
  EXPECT_FALSE(c.listen[1].v6only);  // dual-stack by default
  const char* v4[] = {"ringlb", "--listen", "0.0.0.0:1,v6only", "--backend", "127.0.0.1:3"};
  EXPECT_FALSE(ok(parse_config(5, v4, &c), &message));
  EXPECT_NE(message.find("needs an IPv6 address"), std::string::npos) << message;
}

TEST(Backend, UnixSocket) {
  BackendConfig b;
  std::string err;
  ASSERT_TRUE(ok(parse_backend("unix:/run/app.sock,weight=3", &b), &err)) << err;
  EXPECT_EQ(b.address.family(), AF_UNIX);
  EXPECT_EQ(b.address.to_string(), "unix:/run/app.sock");
  EXPECT_EQ(b.text, "unix:/run/app.sock");
  EXPECT_EQ(b.weight, 3u);
  EXPECT_FALSE(ok(parse_backend("unix:run/app.sock", &b), &err));
  EXPECT_NE(err.find("absolute"), std::string::npos) << err;
  EXPECT_FALSE(ok(parse_backend("unix:/" + std::string(120, 'x'), &b), &err));
  EXPECT_FALSE(ok(parse_backend("unix:", &b), &err));
  // Listeners stay TCP.
  Address a;
  EXPECT_FALSE(parse_address("unix:/run/app.sock", &a, &err));
}

TEST(Backend, SendProxy) {
  BackendConfig b;
  std::string err;
  ASSERT_TRUE(ok(parse_backend("127.0.0.1:80,send-proxy", &b), &err)) << err;
  EXPECT_EQ(b.proxy_protocol, ProxyProtocol::kV1);
  ASSERT_TRUE(ok(parse_backend("[::1]:80,weight=2,send-proxy-v2", &b), &err)) << err;
  EXPECT_EQ(b.proxy_protocol, ProxyProtocol::kV2);
  EXPECT_FALSE(ok(parse_backend("127.0.0.1:80,send-proxy-v3", &b), &err));
  EXPECT_NE(err.find("'send-proxy-v3'"), std::string::npos) << err;
}

TEST(Config, CommandLine) {
  const char* argv[] = {"ringlb", "--listen", "127.0.0.1:1", "--listen", "[::1]:2", "--backend",
                        "127.0.0.1:3,weight=2", "--workers", "3", "--drain-timeout", "1m",
                        "--metrics-listen", "none"};
  Config c;
  std::string msg;
  ASSERT_TRUE(ok(parse_config(std::size(argv), argv, &c), &msg)) << msg;
  ASSERT_EQ(c.listen.size(), 2u);
  EXPECT_EQ(c.listen[1].address.to_string(), "[::1]:2");
  EXPECT_FALSE(c.listen[1].accept_proxy);
  EXPECT_EQ(c.clusters.at(0).backends.at(0).weight, 2u);
  EXPECT_EQ(c.workers, 3u);
  EXPECT_EQ(c.drain_timeout.count(), 60000);
  EXPECT_FALSE(c.metrics_enabled);
}

TEST(Config, AccessLogFormat) {
  Config c;
  std::string msg;
  const char* plain[] = {"ringlb", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2"};
  ASSERT_TRUE(ok(parse_config(std::size(plain), plain, &c), &msg)) << msg;
  EXPECT_EQ(c.access_log_format, AccessLogFormat::kLogfmt);
  for (const char* format : {"json", "logfmt"}) {
    const char* argv[] = {"ringlb", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2",
                          "--access-log", "-", "--access-log-format", format};
    ASSERT_TRUE(ok(parse_config(std::size(argv), argv, &c), &msg)) << msg;
    EXPECT_EQ(c.access_log_format,
              format[0] == 'j' ? AccessLogFormat::kJson : AccessLogFormat::kLogfmt);
  }
  const char* bad[] = {"ringlb", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2",
                       "--access-log-format", "JSON"};
  ASSERT_FALSE(ok(parse_config(std::size(bad), bad, &c), &msg));
  EXPECT_EQ(msg, "invalid value 'JSON' for --access-log-format: expected logfmt or json");
}

TEST(Config, CommandLineBuildsTheDefaultCluster) {
  const char* argv[] = {"ringlb", "--listen", "127.0.0.1:1", "--listen", "127.0.0.1:2,accept-proxy",
                        "--backend", "127.0.0.1:3", "--backend", "127.0.0.1:4,weight=0",
                        "--balance", "leastconn", "--connect-timeout", "3s", "--deny", "10.0.0.0/8"};
  Config c;
  std::string msg;
  ASSERT_TRUE(ok(parse_config(std::size(argv), argv, &c), &msg)) << msg;
  ASSERT_EQ(c.clusters.size(), 1u);
  EXPECT_EQ(c.clusters[0].name, "default");
  EXPECT_EQ(c.clusters[0].policy, balancer::Policy::kLeastConn);
  EXPECT_EQ(c.clusters[0].connect_timeout.count(), 3000);
  EXPECT_EQ(c.clusters[0].queue_timeout.count(), 3000);  // unset: the connect timeout
  ASSERT_EQ(c.clusters[0].backends.size(), 2u);
  EXPECT_EQ(c.clusters[0].backends[1].weight, 0u);
  // The flat fields the runtime reads are cluster 0's.
  EXPECT_EQ(c.clusters.at(0).backends.size(), 2u);
  EXPECT_EQ(c.clusters.at(0).policy, balancer::Policy::kLeastConn);
  EXPECT_EQ(c.clusters.at(0).queue_timeout.count(), 3000);
  ASSERT_EQ(c.listen.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(c.listen[i].name, "listener-" + std::to_string(i + 1));
    EXPECT_EQ(c.listen[i].cluster, "default");
    EXPECT_EQ(c.listen[i].deny.size(), 1u);  // the global list, copied in
  }
  EXPECT_TRUE(c.listen[1].accept_proxy);
}

TEST(Config, CommandLineDefaults) {
  const char* argv[] = {"ringlb", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:3"};
  Config c;
  std::string msg;
  ASSERT_TRUE(ok(parse_config(std::size(argv), argv, &c), &msg)) << msg;
  // What --help shows as the defaults.
  EXPECT_EQ(c.clusters.at(0).policy, balancer::Policy::kRoundRobin);
  EXPECT_EQ(c.clusters.at(0).maglev_size, 65537u);
  EXPECT_EQ(c.clusters.at(0).health.interval.count(), 2000);
  EXPECT_EQ(c.clusters.at(0).health.timeout.count(), 1000);
  EXPECT_EQ(c.clusters.at(0).health.rise, 2u);
  EXPECT_EQ(c.clusters.at(0).health.fall, 3u);
  EXPECT_EQ(c.clusters.at(0).connect_timeout.count(), 2000);
  EXPECT_EQ(c.clusters.at(0).queue_timeout.count(), 2000);
  EXPECT_EQ(c.clusters.at(0).connect_attempts, 3u);
  EXPECT_EQ(c.idle_timeout.count(), 300000);
  EXPECT_EQ(c.fin_timeout.count(), 30000);
  EXPECT_EQ(c.drain_timeout.count(), 10000);
  EXPECT_EQ(c.max_connection_duration.count(), 0);
  EXPECT_EQ(c.max_connections, 4096u);
  EXPECT_EQ(c.buffer_size, 131072u);
  EXPECT_EQ(c.buffers_per_worker, 128u);
  EXPECT_EQ(c.backlog, 1024u);
  EXPECT_TRUE(c.metrics_enabled);
  EXPECT_EQ(c.metrics_listen.to_string(), "127.0.0.1:9090");
  EXPECT_TRUE(c.acceptor_batch);
  EXPECT_TRUE(c.iowq_batch);
  EXPECT_TRUE(c.cpus.empty());
}

// Input bounds (docs/configuration.md, "Limits"): each value from outside beyond its limit is refused at parse
// time, naming the flag and the limit, rather than wrapping or failing once running.
std::string refusal(std::vector<std::string> args) {
  args.insert(args.begin(), {"ringlb", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2"});
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  Config c;
  std::string msg;
  if (ok(parse_config(static_cast<int>(argv.size()), argv.data(), &c), &msg)) return "accepted";
  return msg;
}

TEST(Limits, ValuesBeyondTheirLimitsAreRefusedNamingTheLimit) {
  EXPECT_NE(refusal({"--health-interval", "4294967296ms"}).find("at most 576h"), std::string::npos);
  EXPECT_NE(refusal({"--health-interval", "18446744073709551617ms"}).find("--health-interval"), std::string::npos);
  EXPECT_NE(refusal({"--max-connections-per-source", "1000001"}).find("from 0 to 1000000"), std::string::npos);
  EXPECT_NE(refusal({"--connection-rate-per-source", "10"}).find("N/s or N/m"), std::string::npos);
  EXPECT_NE(refusal({"--connection-rate-per-source", "1000001/s"}).find("N from 0 to 1000000"), std::string::npos);
  EXPECT_NE(refusal({"--connection-burst-per-source", "-1"}).find("from 0 to 1000000"), std::string::npos);
  EXPECT_NE(refusal({"--source-table-size", "0"}).find("from 1 to 1000000"), std::string::npos);
  const std::string long_path = "/tmp/" + std::string(103, 'a');  // 108 bytes: no room for the NUL
  EXPECT_NE(refusal({"--control-socket", long_path}).find("at most 107 bytes"), std::string::npos);
  EXPECT_NE(refusal({"--takeover", long_path}).find("1 to 107 bytes"), std::string::npos);
  EXPECT_EQ(refusal({"--control-socket", long_path.substr(1)}), "accepted");
  std::vector<std::string> many;
  for (int i = 0; i < 1025; ++i) many.insert(many.end(), {"--backend", "127.0.0.1:" + std::to_string(i + 3)});
  EXPECT_NE(refusal(many).find("more than 1024 --backend"), std::string::npos);
  many.clear();
  for (int i = 0; i < 512; ++i) many.insert(many.end(), {"--listen", "127.0.0.1:0"});
  EXPECT_NE(refusal(many).find("more than 512 --listen"), std::string::npos);
}

TEST(Names, ClusterAndListenerNames) {
  std::string err;
  EXPECT_TRUE(ok(check_name("web-1.prod_a"), &err));
  EXPECT_FALSE(ok(check_name(""), &err));
  EXPECT_FALSE(ok(check_name("-web"), &err));
  EXPECT_FALSE(ok(check_name("web app"), &err));
  EXPECT_FALSE(ok(check_name(std::string(65, 'a')), &err));
}

TEST(Names, SniPatterns) {
  std::string out, err;
  ASSERT_TRUE(ok(parse_sni_pattern("API.Example.com", &out), &err)) << err;
  EXPECT_EQ(out, "api.example.com");
  ASSERT_TRUE(ok(parse_sni_pattern("*.example.com", &out), &err)) << err;
  EXPECT_EQ(out, "*.example.com");
  for (const char* bad : {"", "*", "*.", "a.*.example.com", "*example.com", "**.example.com",
                          "example.com.", "a..b", "-a.example.com", "a_b.example.com", "*.*.com"}) {
    EXPECT_FALSE(ok(parse_sni_pattern(bad, &out), &err)) << bad;
  }
  EXPECT_FALSE(ok(parse_sni_pattern(std::string(64, 'a') + ".com", &out), &err));  // label > 63
}

}  // namespace
}  // namespace ringlb
