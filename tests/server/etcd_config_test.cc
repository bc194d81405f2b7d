// The etcd keys of the config file: a cluster's discovery and prefix, the global [etcd] table,
// and every bad value or pairing refused with "FILE:LINE: KEY: message" (exit 2 in main).
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
  Status status;
  Config config;
  std::string message;
  std::string path;
};

Parsed parse_toml(const std::string& text) {
  const char* dir = getenv("TEST_TMPDIR");
  Parsed p;
  p.path = std::string(dir != nullptr ? dir : "/tmp") + "/etcd.toml";
  std::ofstream(p.path) << text;
  std::vector<const char*> argv = {"ringlb", "--config", p.path.c_str()};
  p.status = parse_config(static_cast<int>(argv.size()), const_cast<char**>(argv.data()), &p.config);
  p.message = p.status.message();
  return p;
}

const char kListener[] = "\n[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n";

TEST(EtcdConfig, ReadsTheTableAndAClusterWithOnlyAPrefix) {
  const Parsed p = parse_toml(std::string(R"([etcd]
endpoints = ["http://10.0.0.1:2379", "https://etcd.internal:2379"]
ca-file = "/etc/ringlb/etcd-ca.pem"
cert-file = "/etc/ringlb/etcd.pem"
key-file = "/etc/ringlb/etcd.key"
user = "ringlb"
password = "secret"
dial-timeout = "1s"
request-timeout = "3s"
reconnect-min = "100ms"
reconnect-max = "10s"

[cluster.web]
discovery = "etcd"
etcd-prefix = "/ringlb/web/"
balance = "maglev"
)") + kListener);
  ASSERT_TRUE(p.status.ok()) << p.message;
  const EtcdConfig& e = p.config.etcd;
  EXPECT_EQ(e.endpoints, (std::vector<std::string>{"http://10.0.0.1:2379", "https://etcd.internal:2379"}));
  EXPECT_EQ(e.ca_file, "/etc/ringlb/etcd-ca.pem");
  EXPECT_EQ(e.cert_file, "/etc/ringlb/etcd.pem");
  EXPECT_EQ(e.key_file, "/etc/ringlb/etcd.key");
  EXPECT_EQ(e.user, "ringlb");
  EXPECT_EQ(e.password, "secret");
  EXPECT_EQ(e.dial_timeout, Millis(1000));
  EXPECT_EQ(e.request_timeout, Millis(3000));
  EXPECT_EQ(e.reconnect_min, Millis(100));
  EXPECT_EQ(e.reconnect_max, Millis(10000));
  ASSERT_EQ(p.config.clusters.size(), 1u);
  EXPECT_TRUE(p.config.clusters[0].discovered);
  EXPECT_EQ(p.config.clusters[0].etcd_prefix, "/ringlb/web/");
  EXPECT_TRUE(p.config.clusters[0].backends.empty());
}

TEST(EtcdConfig, FileBackendsStayBesideThePrefix) {
  const Parsed p = parse_toml(std::string("[etcd]\nendpoints = \"http://127.0.0.1:2379\"\n[cluster.web]\n"
                                          "discovery = \"etcd\"\netcd-prefix = \"/w/\"\nbackends = [\"127.0.0.1:80\"]\n") +
                              kListener);
  ASSERT_TRUE(p.status.ok()) << p.message;
  EXPECT_EQ(p.config.clusters[0].backends.size(), 1u);
  EXPECT_EQ(p.config.etcd.endpoints, (std::vector<std::string>{"http://127.0.0.1:2379"}));
}

TEST(EtcdConfig, BadValuesNameFileLineAndKey) {
  struct Case {
    std::string text;
    std::string error;  // after "PATH:"
  };
  const std::string etcd = "[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\n";
  const std::string web = "[cluster.web]\ndiscovery = \"etcd\"\netcd-prefix = \"/w/\"\n";
  const std::vector<Case> cases = {
      {"[etcd]\nendpoints = [\"127.0.0.1:2379\"]\n" + web,
       "2: etcd.endpoints: invalid value [ '127.0.0.1:2379' ]: '127.0.0.1:2379': expected http://HOST:PORT or https://HOST:PORT"},
      {"[etcd]\nendpoints = [\"http://h:2379/v3\"]\n" + web, "2: etcd.endpoints:"},
      {"[etcd]\nendpoints = []\n" + web, "2: etcd.endpoints: invalid value []: expected one or more URLs"},
      {"[etcd]\nendpoint = [\"http://h:1\"]\n" + web, "2: etcd.endpoint: unknown key"},
      {etcd + "dial-timeout = \"0s\"\n" + web, "3: etcd.dial-timeout: invalid value \"0s\": must be above zero"},
      {etcd + "cert-file = \"/c.pem\"\n" + web, "3: etcd.cert-file: needs both cert-file and key-file"},
      {etcd + "password = \"p\"\n" + web, "3: etcd.password: only used with user"},
      {etcd + "reconnect-min = \"10s\"\nreconnect-max = \"1s\"\n" + web, "3: etcd.reconnect-min: reconnect-min is above reconnect-max"},
      {"etcd = 5\n" + web, "1: etcd: expected an [etcd] table"},
      {etcd + "[cluster.web]\ndiscovery = \"consul\"\netcd-prefix = \"/w/\"\n",
       "4: cluster.web.discovery: invalid value \"consul\": expected etcd or none"},
      {etcd + "[cluster.web]\ndiscovery = \"etcd\"\n", "4: cluster.web.etcd-prefix: required with discovery = \"etcd\""},
      {etcd + "[cluster.web]\netcd-prefix = \"/w/\"\nbackends = [\"127.0.0.1:1\"]\n",
       "4: cluster.web.etcd-prefix: only used with discovery = \"etcd\""},
      {etcd + "[cluster.web]\ndiscovery = \"etcd\"\netcd-prefix = \"/w\"\n",
       "5: cluster.web.etcd-prefix: invalid value \"/w\": must end with '/' (\"/ringlb/web/\")"},
      {web, "2: cluster.web.discovery: needs an [etcd] table with endpoints"},
      {"etcd-prefix = \"/w/\"\n" + etcd + web, "1: etcd-prefix: unknown key"},
  };
  for (const Case& c : cases) {
    const Parsed p = parse_toml(c.text + kListener);
    EXPECT_FALSE(p.status.ok()) << c.text;
    EXPECT_NE(p.message.find(p.path + ":" + c.error), std::string::npos) << c.text << "\n-> " << p.message;
  }
}

}  // namespace
}  // namespace ringlb
