// [listener.tls] and [cluster.NAME.tls]: the keys map onto TlsListenerConfig and TlsClusterConfig,
// defaults hold, and every mistake is refused as "FILE:LINE: KEY: message" (exit 2).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "server/config/command_line.h"
#include "server/config/config.h"

namespace ringlb {
namespace {

struct Parsed {
  Status status = Status::error("not parsed");
  Config config;
  std::string message;
  std::string path;
};

Parsed parse_toml(const std::string& text) {
  const char* dir = getenv("TEST_TMPDIR");
  Parsed p;
  p.path = std::string(dir != nullptr ? dir : "/tmp") + "/tls.toml";
  std::ofstream(p.path) << text;
  const char* argv[] = {"ringlb", "--config", p.path.c_str()};
  p.status = parse_config(3, argv, &p.config);
  p.message = p.status.message();
  return p;
}

const char kHead[] = "[cluster.web]\nbackends = [\"127.0.0.1:8080\"]\n[[listener]]\nname = \"https\"\n"
                     "address = \"127.0.0.1:0\"\ncluster = \"web\"\n";  // 6 lines

TEST(TlsConfig, EveryListenerKey) {
  const Parsed p = parse_toml(std::string(kHead) + R"([listener.tls]
certificates = [{ cert = "/etc/ringlb/a.crt", key = "/etc/ringlb/a.key" },
                { cert = "/etc/ringlb/a-ec.crt", key = "/etc/ringlb/a-ec.key" }]
alpn = ["h2", "http/1.1"]
min-version = "1.3"
ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
ciphersuites = "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"
client-ca = "/etc/ringlb/clients.pem"
client-verify = "required"
handshake-timeout = "3s"
session-tickets = true
ticket-keys-file = "/etc/ringlb/tickets.key"
)");
  ASSERT_TRUE(p.status.ok()) << p.message;
  ASSERT_EQ(p.config.listen.size(), 1u);
  ASSERT_TRUE(p.config.listen[0].tls.has_value());
  const TlsListenerConfig& t = *p.config.listen[0].tls;
  ASSERT_EQ(t.certificates.size(), 2u);
  EXPECT_EQ(t.certificates[1].cert, "/etc/ringlb/a-ec.crt");
  EXPECT_EQ(t.certificates[1].key, "/etc/ringlb/a-ec.key");
  EXPECT_EQ(t.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_EQ(t.min_version, TlsMinVersion::k13);
  EXPECT_EQ(t.ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256");
  EXPECT_EQ(t.ciphersuites, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256");
  EXPECT_EQ(t.client_ca, "/etc/ringlb/clients.pem");
  EXPECT_EQ(t.client_verify, TlsClientVerify::kRequired);
  EXPECT_EQ(t.handshake_timeout, Millis(3000));
  EXPECT_TRUE(t.session_tickets);
  EXPECT_EQ(t.ticket_keys_file, "/etc/ringlb/tickets.key");
}

TEST(TlsConfig, ListenerDefaults) {
  const Parsed p = parse_toml(std::string(kHead) + "[listener.tls]\ncertificates = [{ cert = \"a.crt\", key = \"a.key\" }]\n");
  ASSERT_TRUE(p.status.ok()) << p.message;
  const TlsListenerConfig& t = *p.config.listen[0].tls;
  EXPECT_TRUE(t.alpn.empty());
  EXPECT_EQ(t.min_version, TlsMinVersion::k12);
  EXPECT_TRUE(t.ciphers.empty());
  EXPECT_TRUE(t.ciphersuites.empty());
  EXPECT_EQ(t.client_verify, TlsClientVerify::kNone);
  EXPECT_EQ(t.handshake_timeout, Millis(10000));
  EXPECT_TRUE(t.session_tickets);
  EXPECT_TRUE(t.ticket_keys_file.empty());
  EXPECT_FALSE(p.config.clusters[0].tls.has_value()) << "no [cluster.web.tls]: plain TCP to the backends";
}

TEST(TlsConfig, ClusterKeysAndDefaults) {
  Parsed p = parse_toml(R"([cluster.web]
backends = ["127.0.0.1:8443"]
[cluster.web.tls]
sni = "Backend.Internal"
verify = true
ca-file = "/etc/ringlb/backend-ca.pem"
cert = "/etc/ringlb/client.crt"
key = "/etc/ringlb/client.key"
alpn = ["http/1.1"]
[cluster.plain]
backends = ["127.0.0.1:8444"]
[cluster.plain.tls]
[[listener]]
address = "127.0.0.1:0"
cluster = "web"
)");
  ASSERT_TRUE(p.status.ok()) << p.message;
  ASSERT_EQ(p.config.clusters.size(), 2u);
  const TlsClusterConfig& t = *p.config.clusters[0].tls;
  EXPECT_EQ(t.sni, "backend.internal");
  EXPECT_TRUE(t.verify);
  EXPECT_EQ(t.ca_file, "/etc/ringlb/backend-ca.pem");
  EXPECT_EQ(t.cert, "/etc/ringlb/client.crt");
  EXPECT_EQ(t.key, "/etc/ringlb/client.key");
  EXPECT_EQ(t.alpn, (std::vector<std::string>{"http/1.1"}));
  ASSERT_TRUE(p.config.clusters[1].tls.has_value()) << "an empty table still turns TLS on";
  EXPECT_EQ(*p.config.clusters[1].tls, TlsClusterConfig{}) << "verify on, no SNI, the system store";
  EXPECT_TRUE(p.config.clusters[1].tls->verify);
}

// Each broken table, with the line and key its error must name.
struct Bad {
  const char* tls;      // the [listener.tls] table's lines (from line 7)
  const char* expected;  // ":LINE: KEY: message" after the file name
};

TEST(TlsConfig, ListenerMistakesNameTheirLineAndKey) {
  const Bad cases[] = {
      {"[listener.tls]\n", ":7: listener[0].tls.certificates: required"},
      {"[listener.tls]\ncertificates = []\n", ":8: listener[0].tls.certificates: expected an array of one or more"},
      {"[listener.tls]\ncertificates = [\"a.pem\"]\n", ":8: listener[0].tls.certificates[0]: expected {cert"},
      {"[listener.tls]\ncertificates = [{ cert = \"a.pem\" }]\n",
       ":8: listener[0].tls.certificates[0]: needs both cert and key"},
      {"[listener.tls]\ncertificates = [{ cert = \"a.pem\", key = \"\" }]\n",
       ":8: listener[0].tls.certificates[0].key: must not be empty"},
      {"[listener.tls]\ncertificates = [{ cert = \"a\", key = \"b\", chain = \"c\" }]\n",
       ":8: listener[0].tls.certificates[0].chain: unknown key"},
      {"[listener.tls]\ncertificates = [{ cert = \"a\", key = \"b\" }]\nmin-version = \"1.1\"\n",
       ":9: listener[0].tls.min-version: invalid value \"1.1\": expected \"1.2\" or \"1.3\""},
      {"[listener.tls]\ncertificates = [{ cert = \"a\", key = \"b\" }]\nalpn = \"h2\"\n",
       ":9: listener[0].tls.alpn: expected an array of one or more protocol names"},
      {"[listener.tls]\ncertificates = [{ cert = \"a\", key = \"b\" }]\nalpn = [\"h2\", \"h2\"]\n",
       ":9: listener[0].tls.alpn[1]: 'h2' is listed twice"},
      {"[listener.tls]\ncertificates = [{ cert = \"a\", key = \"b\" }]\nalpn = [\"\"]\n",
       ":9: listener[0].tls.alpn[0]: expected a protocol name of 1 to 255 bytes"},
      {"[listener.tls]\ncertificates = [{ cert = \"a\", key = \"b\" }]\nciphers = \"NO-SUCH-CIPHER\"\n",
       ":9: listener[0].tls.ciphers: invalid value \"NO-SUCH-CIPHER\": no TLS 1.2 cipher OpenSSL knows"},
      {"[listener.tls]\ncertificates = [{ cert = \"a\", key = \"b\" }]\nciphersuites = \"TLS_NOPE\"\n",
       ":9: listener[0].tls.ciphersuites: invalid value \"TLS_NOPE\": not a TLS 1.3 ciphersuite list"},
      {"[listener.tls]\ncertificates = [{ cert = \"a\", key = \"b\" }]\nclient-verify = \"required\"\n",
       ":9: listener[0].tls.client-verify: needs client-ca"},
      {"[listener.tls]\ncertificates = [{ cert = \"a\", key = \"b\" }]\nclient-verify = \"maybe\"\n",
       ":9: listener[0].tls.client-verify: invalid value \"maybe\": expected \"required\", \"optional\" or \"none\""},
      {"[listener.tls]\ncertificates = [{ cert = \"a\", key = \"b\" }]\nclient-ca = \"ca.pem\"\n",
       ":9: listener[0].tls.client-ca: only used with client-verify = \"required\" or \"optional\""},
      {"[listener.tls]\ncertificates = [{ cert = \"a\", key = \"b\" }]\nhandshake-timeout = \"0s\"\n",
       ":9: listener[0].tls.handshake-timeout: invalid value \"0s\": must be above 0"},
      {"[listener.tls]\ncertificates = [{ cert = \"a\", key = \"b\" }]\nhandshake-timeout = \"soon\"\n",
       ":9: listener[0].tls.handshake-timeout: invalid value \"soon\""},
      {"[listener.tls]\ncertificates = [{ cert = \"a\", key = \"b\" }]\nsession-tickets = \"yes\"\n",
       ":9: listener[0].tls.session-tickets: invalid value \"yes\": expected true or false"},
      {"[listener.tls]\ncertificates = [{ cert = \"a\", key = \"b\" }]\nsession-tickets = false\n"
       "ticket-keys-file = \"k\"\n",
       ":10: listener[0].tls.ticket-keys-file: only used with session-tickets = true"},
      {"[listener.tls]\ncertificates = [{ cert = \"a\", key = \"b\" }]\nsni = \"x\"\n",
       ":9: listener[0].tls.sni: unknown key (a [listener.tls] table has certificates, alpn,"},
      {"tls = true\n", ":7: listener[0].tls: expected a table [listener.tls]"},
  };
  for (const Bad& c : cases) {
    const Parsed p = parse_toml(std::string(kHead) + c.tls);
    EXPECT_FALSE(p.status.ok()) << c.tls;
    EXPECT_NE(p.message.find(p.path + c.expected), std::string::npos) << c.tls << "\ngot: " << p.message;
  }
}

TEST(TlsConfig, ClusterMistakesNameTheirLineAndKey) {
  const Bad cases[] = {
      {"[cluster.web.tls]\ncert = \"c.pem\"\n", ":4: cluster.web.tls.cert: needs both cert and key"},
      {"[cluster.web.tls]\nkey = \"k.pem\"\n", ":4: cluster.web.tls.key: needs both cert and key"},
      {"[cluster.web.tls]\nverify = false\nca-file = \"ca.pem\"\n", ":5: cluster.web.tls.ca-file: only used with verify = true"},
      {"[cluster.web.tls]\nverify = \"no\"\n", ":4: cluster.web.tls.verify: invalid value \"no\": expected true or false"},
      {"[cluster.web.tls]\nsni = \"10.0.0.1\"\n", ":4: cluster.web.tls.sni: invalid value \"10.0.0.1\": expected a DNS name"},
      {"[cluster.web.tls]\nsni = \"bad name\"\n", ":4: cluster.web.tls.sni: invalid value \"bad name\""},
      {"[cluster.web.tls]\nalpn = []\n", ":4: cluster.web.tls.alpn: expected an array of one or more"},
      {"[cluster.web.tls]\nverfy = false\n", ":4: cluster.web.tls.verfy: unknown key (a [cluster.NAME.tls] table has sni, verify,"},
  };
  for (const Bad& c : cases) {
    const Parsed p = parse_toml(std::string("[cluster.web]\nbackends = [\"127.0.0.1:8080\"]\n") + c.tls +
                                "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n");
    EXPECT_FALSE(p.status.ok()) << c.tls;
    EXPECT_NE(p.message.find(p.path + c.expected), std::string::npos) << c.tls << "\ngot: " << p.message;
  }
}

// "tsl" is a near miss of the structural key: the hint names it.
TEST(TlsConfig, MisspeltTableGetsAHint) {
  const Parsed p = parse_toml(std::string(kHead) + "[listener.tsl]\ncertificates = []\n");
  EXPECT_FALSE(p.status.ok());
  EXPECT_NE(p.message.find(":7: listener[0].tsl: unknown key (did you mean 'tls'?)"), std::string::npos) << p.message;
}

}  // namespace
}  // namespace ringlb
