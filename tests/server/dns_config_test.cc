// Backends written as names (HOST:PORT, srv:NAME), the resolve-* keys and [resolvers]: their
// syntax on the command line and in the file, and every bad value named as FILE:LINE: KEY.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "server/config/command_line.h"
#include "server/config/config.h"
#include "server/config/dns_name.h"

namespace ringlb {
namespace {

// Whether `s` is ok, its message (if any) in *message.
bool ok(const Status& s, std::string* message) {
  *message = s.message();
  return s.ok();
}

struct Parsed {
  Status status;
  Config config;
  std::string message;
};

Parsed parse_args(std::vector<std::string> args) {
  args.insert(args.begin(), "ringlb");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  Parsed p;
  p.status = parse_config(static_cast<int>(argv.size()), argv.data(), &p.config);
  p.message = p.status.message();
  return p;
}

std::string write_file(const std::string& text) {
  const char* dir = getenv("TEST_TMPDIR");
  const std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/dns.toml";
  std::ofstream(path) << text;
  return path;
}

TEST(DnsName, HostPortSrvAndWhatStaysAnAddressError) {
  DnsName n;
  std::string why;
  ASSERT_TRUE(ok(parse_dns_name("DB.Internal:5432", &n), &why)) << why;
  EXPECT_EQ(n.kind, DnsName::Kind::kHost);
  EXPECT_EQ(n.host, "db.internal");
  EXPECT_EQ(n.port, 5432);
  ASSERT_TRUE(ok(parse_dns_name("db:80", &n), &why));  // a short name (resolv.conf's search list)
  ASSERT_TRUE(ok(parse_dns_name("db.internal.:80", &n), &why));
  EXPECT_EQ(n.host, "db.internal.");
  ASSERT_TRUE(ok(parse_dns_name("srv:_pg._tcp.db.internal", &n), &why)) << why;
  EXPECT_EQ(n.kind, DnsName::Kind::kSrv);
  EXPECT_EQ(n.host, "_pg._tcp.db.internal");
  // Addresses (good or mistyped) are not names, and no error: the address parser's message stays.
  for (const char* text : {"10.0.0.1:80", "10.0.0.300:80", "[::1]:80", "::1:80", "127.0.0.1", "host", ""}) {
    EXPECT_TRUE(ok(parse_dns_name(text, &n), &why)) << text;
    EXPECT_EQ(n.kind, DnsName::Kind::kNone) << text;
  }
  // Meant as names, and wrong: said why.
  for (const char* text : {"-db.internal:80", "db..internal:80", "db.internal:0", "db.internal:65536",
                           "db.internal:http", "db!.internal:80", "srv:_pg._tcp.db:5432", "srv:", "srv:a..b",
                           "a.123:80"}) {
    EXPECT_FALSE(ok(parse_dns_name(text, &n), &why)) << text;
    EXPECT_NE(why, "") << text;
  }
  EXPECT_FALSE(valid_dns_name(std::string(64, 'a') + ".test"));
  EXPECT_TRUE(valid_dns_name(std::string(63, 'a') + ".test"));
  EXPECT_FALSE(valid_dns_name(std::string(250, 'a').insert(60, ".").insert(120, ".").insert(180, ".")));
}

TEST(DnsBackend, ANameTakesTheBackendSettingsAnSrvNameNoWeight) {
  BackendConfig b;
  std::string why;
  ASSERT_TRUE(ok(parse_backend("db.internal:5432,weight=3,backup,send-proxy", &b), &why)) << why;
  EXPECT_EQ(b.dns.kind, DnsName::Kind::kHost);
  EXPECT_EQ(b.text, "db.internal:5432");
  EXPECT_EQ(b.weight, 3u);
  EXPECT_TRUE(b.backup);
  ASSERT_TRUE(ok(parse_backend("srv:_pg._tcp.internal,max-connections=5", &b), &why)) << why;
  EXPECT_EQ(b.dns.kind, DnsName::Kind::kSrv);
  EXPECT_FALSE(ok(parse_backend("srv:_pg._tcp.internal,weight=2", &b), &why));
  EXPECT_NE(why.find("SRV records"), std::string::npos) << why;
  EXPECT_FALSE(ok(parse_backend("10.0.0.300:80", &b), &why));
  EXPECT_NE(why.find("IPv4"), std::string::npos) << why;  // still the address parser's message
  EXPECT_FALSE(ok(parse_backend("unix:relative", &b), &why));
  EXPECT_NE(why.find("absolute"), std::string::npos) << why;
}

TEST(DnsFlags, BackendNamesOnTheCommandLine) {
  // Refused before ("not an IPv4 address"): a name now, resolved at run time.
  Parsed p = parse_args({"--listen", "127.0.0.1:80", "--backend", "db.internal:5432", "--backend",
                         "10.0.0.1:5432", "--resolve-min-interval", "2s", "--resolve-hold", "1m"});
  ASSERT_TRUE(p.status.ok()) << p.message;
  const ClusterConfig& c = p.config.clusters[0];
  ASSERT_EQ(c.backends.size(), 1u);
  EXPECT_EQ(c.backends[0].text, "10.0.0.1:5432");
  ASSERT_EQ(c.names.size(), 1u);
  EXPECT_EQ(c.names[0].text, "db.internal:5432");
  EXPECT_TRUE(c.discovered);
  EXPECT_EQ(c.resolve_min_interval, Millis{2000});
  EXPECT_EQ(c.resolve_max_interval, Millis{300000});
  EXPECT_EQ(c.resolve_hold, Millis{60000});
  p = parse_args({"--listen", "127.0.0.1:80", "--backend", "db..internal:5432"});
  EXPECT_FALSE(p.status.ok());
  EXPECT_NE(p.message.find("invalid --backend 'db..internal:5432': 'db..internal' is neither"), std::string::npos)
      << p.message;
  p = parse_args({"--listen", "127.0.0.1:80", "--backend", "db:1", "--resolve-min-interval", "10m"});
  EXPECT_FALSE(p.status.ok());
  EXPECT_NE(p.message.find("resolve-max-interval"), std::string::npos) << p.message;
  p = parse_args({"--listen", "127.0.0.1:80", "--backend", "db:1", "--resolve-min-interval", "0s"});
  EXPECT_NE(p.message.find("--resolve-min-interval: must be above zero"), std::string::npos) << p.message;
}

TEST(DnsToml, NamesResolversAndTheirDefaults) {
  const std::string path = write_file(R"(resolve-hold = "30s"
[resolvers]
nameservers = ["127.0.0.1:5353", "10.0.0.53", "[::1]:53", "fd00::53"]
timeout = "250ms"
attempts = 3

[cluster.db]
resolve-max-interval = "1m"
backends = ["db.test:5432,weight=2", { address = "srv:_pg._tcp.test", send-proxy = "v2" }, "10.0.0.9:5432"]

[cluster.empty]
backends = ["other.test:80"]

[[listener]]
address = "127.0.0.1:5432"
cluster = "db"
)");
  Parsed p = parse_args({"--config", path});
  ASSERT_TRUE(p.status.ok()) << p.message;
  const ResolversConfig& r = p.config.resolvers;
  ASSERT_EQ(r.nameservers.size(), 4u);
  EXPECT_EQ(r.nameservers[0].to_string(), "127.0.0.1:5353");
  EXPECT_EQ(r.nameservers[1].to_string(), "10.0.0.53:53");
  EXPECT_EQ(r.nameservers[2].to_string(), "[::1]:53");
  EXPECT_EQ(r.nameservers[3].to_string(), "[fd00::53]:53");
  EXPECT_EQ(r.timeout, Millis{250});
  EXPECT_EQ(r.attempts, 3u);
  const ClusterConfig& db = p.config.clusters[0];
  EXPECT_EQ(db.backends.size(), 1u);
  ASSERT_EQ(db.names.size(), 2u);
  EXPECT_EQ(db.names[0].weight, 2u);
  EXPECT_EQ(db.names[1].proxy_protocol, ProxyProtocol::kV2);
  EXPECT_EQ(db.resolve_hold, Millis{30000});  // the top-level default
  EXPECT_EQ(db.resolve_max_interval, Millis{60000});
  EXPECT_EQ(db.resolve_min_interval, Millis{1000});
  EXPECT_TRUE(p.config.clusters[1].discovered);
  EXPECT_TRUE(p.config.clusters[1].backends.empty());
  // Without [resolvers]: resolv.conf's servers, 1 s, 2 attempts.
  p = parse_args({"--listen", "127.0.0.1:80", "--backend", "db:1"});
  EXPECT_TRUE(p.config.resolvers.nameservers.empty());
  EXPECT_EQ(p.config.resolvers.timeout, Millis{1000});
  EXPECT_EQ(p.config.resolvers.attempts, 2u);
}

TEST(DnsToml, BadValuesNameFileLineAndKey) {
  const std::string path = write_file(R"([resolvers]
nameservers = ["127.0.0.1:99999", "dns.test"]
timeout = "0s"
attempts = 0
retries = 2

[cluster.db]
resolve-min-interval = "1m"
resolve-max-interval = "10s"
backends = [
  "db..test:5432",
  { address = "srv:_pg._tcp.test", weight = 3 },
  "db.test:5432",
  "db.test:5432,weight=2",
]

[[listener]]
address = "127.0.0.1:5432"
cluster = "db"
)");
  Parsed p = parse_args({"--config", path});
  ASSERT_FALSE(p.status.ok());
  for (const std::string& want :
       {path + ":2: resolvers.nameservers: invalid value", path + ":3: resolvers.timeout: invalid value \"0s\": must be above zero",
        path + ":4: resolvers.attempts: invalid value 0", path + ":5: resolvers.retries: unknown key",
        path + ":9: cluster.db.resolve-max-interval: invalid value 10000ms: must not be below resolve-min-interval",
        path + ":11: cluster.db.backends[0]: invalid backend \"db..test:5432\": 'db..test' is neither",
        path + ":12: cluster.db.backends[1].weight: an srv: backend takes its weights from the SRV records",
        path + ":14: cluster.db.backends[3]: the same address as backends[2] (db.test:5432)"}) {
    EXPECT_NE(p.message.find(want), std::string::npos) << want << "\nin:\n" << p.message;
  }
}

}  // namespace
}  // namespace ringlb
