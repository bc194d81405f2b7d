// UDP listeners in the TOML file: their keys and defaults (idle-timeout 30s), the keys each
// protocol refuses ("FILE:LINE: KEY: message", as `ringlb check` prints them), the cluster behind
// one (IP backends, no send-proxy, QUIC server IDs of the listener's length, told apart), a TCP
// and a UDP listener on one address, and the health checks of a cluster only UDP listeners use.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "server/config/command_line.h"
#include "server/config/udp_config.h"

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
  p.path = std::string(dir != nullptr ? dir : "/tmp") + "/udp.toml";
  std::ofstream(p.path) << text;
  const char* argv[] = {"ringlb", "--config", p.path.c_str()};
  p.status = parse_config(3, argv, &p.config);
  p.message = p.status.message();
  return p;
}

// The file's errors without its path: "LINE: KEY: message" lines.
std::vector<std::string> errors(const Parsed& p) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < p.message.size()) {
    const size_t end = std::min(p.message.find('\n', at), p.message.size());
    std::string line = p.message.substr(at, end - at);
    if (line.rfind(p.path + ":", 0) == 0) line = line.substr(p.path.size() + 1);
    out.push_back(line);
    at = end + 1;
  }
  return out;
}

const ListenConfig* listener(const Config& c, const std::string& name) {
  for (const ListenConfig& l : c.listen) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

const ClusterConfig* cluster(const Config& c, const std::string& name) {
  for (const ClusterConfig& k : c.clusters) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

TEST(UdpConfig, ListenerKeysAndDefaults) {
  const Parsed p = parse_toml(R"(idle-timeout = "10m"
[cluster.dns]
backends = ["127.0.0.1:5353"]
[cluster.quic]
backends = [{ address = "127.0.0.1:4433", quic-server-id = "0x0001" }, { address = "127.0.0.1:4434", quic-server-id = "0x00fe" }]

[[listener]]
name = "dns"
protocol = "udp"
address = "127.0.0.1:53"
cluster = "dns"
responses = 1
max-flows = 5000

[[listener]]
name = "dns-tcp"
address = "127.0.0.1:53"
cluster = "dns"

[[listener]]
name = "syslog"
protocol = "udp"
address = "[::1]:514"
cluster = "dns"
idle-timeout = "2m"
per-datagram = true

[[listener]]
name = "h3"
protocol = "udp"
address = "127.0.0.1:443"
cluster = "quic"
quic = true
quic-server-id-length = 2
)");
  ASSERT_TRUE(p.status.ok()) << p.message;
  const ListenConfig& dns = *listener(p.config, "dns");
  EXPECT_EQ(dns.protocol, ListenProtocol::kUdp);
  EXPECT_EQ(dns.udp.responses, 1u);
  EXPECT_EQ(dns.udp.max_flows, 5000u);
  EXPECT_FALSE(dns.udp.per_datagram);
  EXPECT_EQ(udp_idle_timeout(dns), Millis{30000}) << "UDP's own default, not the global 10m";
  const ListenConfig& tcp = *listener(p.config, "dns-tcp");
  EXPECT_EQ(tcp.protocol, ListenProtocol::kTcp) << "tcp unless said";
  EXPECT_EQ(p.config.idle_timeout, Millis{600000});
  const ListenConfig& syslog = *listener(p.config, "syslog");
  EXPECT_EQ(udp_idle_timeout(syslog), Millis{120000});
  EXPECT_TRUE(syslog.udp.per_datagram);
  EXPECT_FALSE(syslog.udp.responses) << "unset: flows end by idle-timeout only";
  EXPECT_EQ(syslog.udp.max_flows, 100000u);
  const ListenConfig& h3 = *listener(p.config, "h3");
  EXPECT_TRUE(h3.udp.quic);
  EXPECT_EQ(h3.udp.quic_server_id_length, 2u);
  const ClusterConfig& q = *cluster(p.config, "quic");
  EXPECT_EQ(q.backends[0].quic_server_id, std::string("\x00\x01", 2));
  EXPECT_EQ(q.backends[1].quic_server_id, std::string("\x00\xfe", 2));
}

TEST(UdpConfig, UdpKeysOnATcpListenerAreRefusedAtTheirLines) {
  const Parsed p = parse_toml(R"([cluster.web]
backends = ["127.0.0.1:8080"]
[[listener]]
address = "127.0.0.1:80"
cluster = "web"
responses = 1
max-flows = 10
per-datagram = true
quic = true
quic-server-id-length = 4
)");
  ASSERT_FALSE(p.status.ok());
  const std::string why = "only for a UDP listener (protocol = \"udp\")";
  EXPECT_EQ(errors(p), (std::vector<std::string>{"6: listener[0].responses: " + why, "7: listener[0].max-flows: " + why,
                                                 "8: listener[0].per-datagram: " + why, "9: listener[0].quic: " + why,
                                                 "10: listener[0].quic-server-id-length: " + why}));
}

TEST(UdpConfig, TcpKeysOnAUdpListenerAreRefusedWithWhy) {
  const Parsed p = parse_toml(R"([cluster.dns]
backends = ["127.0.0.1:5353"]
[[listener]]
protocol = "udp"
address = "127.0.0.1:53"
cluster = "dns"
accept-proxy = true
fin-timeout = "5s"
max-connections = 10
max-connection-duration = "1h"
[[listener]]
protocol = "udp"
address = "127.0.0.1:54"
sni = [{ name = "a.example", cluster = "dns" }]
)");
  ASSERT_FALSE(p.status.ok());
  EXPECT_EQ(errors(p), (std::vector<std::string>{
                           "7: listener[0].accept-proxy: the PROXY protocol header starts a TCP stream: not for a UDP listener",
                           "8: listener[0].fin-timeout: UDP has no FIN: a flow ends by idle-timeout (and responses)",
                           "9: listener[0].max-connections: a UDP listener has flows, bounded by max-flows",
                           "10: listener[0].max-connection-duration: not for a UDP listener: a flow ends by idle-timeout, "
                           "responses or max-flows",
                           "14: listener[1].sni: SNI routing reads a TLS ClientHello from a TCP stream: not for a UDP "
                           "listener (for QUIC: quic = true)",
                       }));
}

TEST(UdpConfig, QuicKeysThatDoNotGoTogether) {
  const Parsed p = parse_toml(R"([cluster.dns]
backends = ["127.0.0.1:5353"]
[[listener]]
protocol = "udp"
address = "127.0.0.1:53"
cluster = "dns"
quic-server-id-length = 4
[[listener]]
protocol = "udp"
address = "127.0.0.1:443"
cluster = "dns"
quic = true
per-datagram = true
[[listener]]
protocol = "sctp"
address = "127.0.0.1:444"
cluster = "dns"
quic-server-id-length = 16
)");
  ASSERT_FALSE(p.status.ok());
  EXPECT_EQ(errors(p), (std::vector<std::string>{
                           "7: listener[0].quic-server-id-length: only used with quic = true",
                           "13: listener[1].per-datagram: per-datagram and quic = true exclude each other: QUIC keeps "
                           "each connection on its backend by its connection ID",
                           "15: listener[2].protocol: invalid value \"sctp\": expected tcp or udp",
                           "18: listener[2].quic-server-id-length: invalid value 16: expected a whole number from 1 to 15",
                       }));
}

TEST(UdpConfig, TheClusterBehindAUdpListener) {
  const Parsed p = parse_toml(R"([cluster.mixed]
backends = ["unix:/run/app.sock", { address = "127.0.0.1:5353", send-proxy = "v2" }, { address = "127.0.0.1:5354", quic-server-id = "0x01" }]
[[listener]]
address = "127.0.0.1:80"
cluster = "mixed"
[[listener]]
protocol = "udp"
address = "127.0.0.1:53"
quic = true
cluster = "mixed"
)");
  ASSERT_FALSE(p.status.ok());
  EXPECT_EQ(errors(p), (std::vector<std::string>{
                           "10: listener[1].cluster: cluster 'mixed' backends[0] (unix:/run/app.sock) is a Unix socket: a "
                           "UDP listener's backends are IP:PORT",
                           "10: listener[1].cluster: cluster 'mixed' backends[1] (127.0.0.1:5353) has send-proxy: the "
                           "PROXY protocol is not sent over UDP",
                           "10: listener[1].cluster: cluster 'mixed' backends[2] (127.0.0.1:5354) has quic-server-id 0x01, "
                           "1 byte; this listener's quic-server-id-length is 2",
                       }))
      << "the TCP listener takes the same cluster";
}

TEST(UdpConfig, ServerIdsAreWellFormedAndTellBackendsApart) {
  const Parsed p = parse_toml(R"([cluster.quic]
backends = [
  { address = "127.0.0.1:4433", quic-server-id = "0x0001" },
  { address = "127.0.0.1:4434", quic-server-id = "0x0001" },
  { address = "127.0.0.1:4435", quic-server-id = "1" },
  { address = "h3.internal:4433", quic-server-id = "0x0002" },
]
[[listener]]
protocol = "udp"
address = "127.0.0.1:443"
quic = true
cluster = "quic"
)");
  ASSERT_FALSE(p.status.ok());
  EXPECT_EQ(errors(p), (std::vector<std::string>{
                           "4: cluster.quic.backends[1].quic-server-id: invalid value 0x0001: the same as backends[0]'s: "
                           "a server ID names one backend",
                           "5: cluster.quic.backends[2].quic-server-id: invalid value \"1\": expected \"0x\" and 2 to 30 "
                           "hex digits, two per byte, such as \"0x0001\" (got \"1\")",
                           "6: cluster.quic.backends[3].quic-server-id: invalid value 0x0002: a DNS name's addresses would "
                           "all have this server ID: give it to IP:PORT backends",
                       }));
}

TEST(UdpConfig, ATcpAndAUdpListenerShareAnAddressButTwoUdpOnesDoNot) {
  const std::string head = "[cluster.dns]\nbackends = [\"127.0.0.1:5353\"]\n";
  const std::string udp = "[[listener]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:53\"\ncluster = \"dns\"\n";
  const std::string tcp = "[[listener]]\naddress = \"127.0.0.1:53\"\ncluster = \"dns\"\n";
  EXPECT_TRUE(parse_toml(head + udp + tcp).status.ok());
  const Parsed twice = parse_toml(head + udp + udp);
  ASSERT_FALSE(twice.status.ok());
  EXPECT_NE(twice.message.find(":9: listener[1].address: 127.0.0.1:53 is also the address of listener[0] (line 3)"),
            std::string::npos)
      << twice.message;
}

TEST(UdpConfig, AClusterOnlyUdpListenersUseIsNotTcpChecked) {
  const Parsed p = parse_toml(R"(health-interval = "1s"
accept-proxy = true
[cluster.dns]
backends = ["127.0.0.1:5353", { address = "127.0.0.1:5354", check = "udp", check-send = "x" }]
[cluster.checked]
check = "udp"
check-send = '\x00'
backends = ["127.0.0.1:5355"]
[cluster.both]
backends = ["127.0.0.1:5356"]
[cluster.tcp]
backends = ["127.0.0.1:5357"]
[[listener]]
protocol = "udp"
address = "127.0.0.1:53"
cluster = "dns"
[[listener]]
protocol = "udp"
address = "127.0.0.1:54"
cluster = "checked"
[[listener]]
protocol = "udp"
address = "127.0.0.1:55"
cluster = "both"
[[listener]]
address = "127.0.0.1:55"
cluster = "both"
[[listener]]
address = "127.0.0.1:56"
cluster = "tcp"
)");
  ASSERT_TRUE(p.status.ok()) << p.message;
  const ClusterConfig& dns = *cluster(p.config, "dns");
  EXPECT_EQ(dns.health.interval, Millis{0}) << "no check type set: no TCP check of a UDP service";
  EXPECT_EQ(dns.backends[0].health_interval, Millis{0});
  EXPECT_EQ(dns.backends[1].health_interval, Millis{1000}) << "its own udp check runs, at the cluster's interval";
  EXPECT_EQ(cluster(p.config, "checked")->health.interval, Millis{1000});
  EXPECT_EQ(cluster(p.config, "both")->health.interval, Millis{1000}) << "a TCP listener uses it too: its check stays";
  EXPECT_EQ(cluster(p.config, "tcp")->health.interval, Millis{1000});
  // The top level's accept-proxy is every TCP listener's default, and not a UDP listener's.
  EXPECT_FALSE(p.config.listen[0].accept_proxy);
  EXPECT_TRUE(p.config.listen[3].accept_proxy);
}

TEST(UdpConfig, UntilTheDataPathIsInUdpListenersAreCheckedButNotServed) {
  const Parsed p = parse_toml("[cluster.dns]\nbackends = [\"127.0.0.1:5353\"]\n[[listener]]\nname = \"dns\"\n"
                              "protocol = \"udp\"\naddress = \"127.0.0.1:53\"\ncluster = \"dns\"\n");
  ASSERT_TRUE(p.status.ok()) << p.message;
  EXPECT_EQ(udp_not_served(p.config), "listener 'dns': protocol = \"udp\" is not served yet (ringlb check accepts it)");
  Config tcp_only = p.config;
  tcp_only.listen[0].protocol = ListenProtocol::kTcp;
  EXPECT_EQ(udp_not_served(tcp_only), "");
}

}  // namespace
}  // namespace ringlb
