// The TOML config file: how it maps onto the model, how flags combine with it, and that every
// broken file is refused with "FILE:LINE: KEY: message".
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "server/config/command_line.h"
#include "server/config/config.h"
#include "server/config/toml_config.h"
#include "server/config/toml_prefilter.h"

namespace ringlb {
namespace {

struct Parsed {
  Status status;
  Config config;
  std::string message;
  std::string path;
};

std::string write_file(const std::string& name, const std::string& text) {
  const char* dir = getenv("TEST_TMPDIR");
  const std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// TomlFile::load_text as "f.toml", its errors one a line in *errors.
bool load(TomlFile& file, const std::string& text, std::vector<std::string>* errors) {
  const Status s = file.load_text(text, "f.toml");
  *errors = s.lines();
  return s.ok();
}

Parsed parse_args(std::vector<std::string> args) {
  args.insert(args.begin(), "ringlb");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  Parsed p;
  p.status = parse_config(static_cast<int>(argv.size()), argv.data(), &p.config);
  p.message = p.status.message();
  return p;
}

Parsed parse_toml(const std::string& text, std::vector<std::string> flags = {}) {
  const std::string path = write_file("test.toml", text);
  flags.insert(flags.begin(), {"--config", path});
  Parsed p = parse_args(flags);
  p.path = path;
  return p;
}

const char kTwoClusters[] = R"(workers = 3
idle-timeout = "1m"
health-interval = "5s"
accept-proxy = true
deny = ["192.0.2.0/24"]

[cluster.zeta]
balance = "maglev"
connect-timeout = "4s"
backends = [
  "127.0.0.1:8080,weight=2,send-proxy",
  { address = "127.0.0.1:8081", weight = 0, max-connections = 7, backup = true, send-proxy = "v2", health-interval = "1s", health-timeout = "250ms", rise = 4, fall = 5 },
]

[cluster.alpha]
policy = "leastconn"
health-interval = "10s"
queue-timeout = "0s"
backends = [{ address = "unix:/run/a.sock" }]

[[listener]]
address = "127.0.0.1:0"
cluster = "zeta"

[[listener]]
name = "tls"
address = "[::]:8443"
v6only = true
sni = [{ name = "A.example.com", cluster = "alpha" }, { name = "*.example.com", cluster = "zeta" }]
sni-default = "alpha"
tls-inspect-timeout = "2s"
trusted-proxies = ["10.0.0.0/8"]
proxy-header-timeout = "1s"
allow = ["10.0.0.0/8"]
max-connections = 100
idle-timeout = "1h"
fin-timeout = "5s"
max-connection-duration = "2h"
)";

TEST(TomlConfig, MapsClustersAndListeners) {
  Parsed p = parse_toml(kTwoClusters);
  ASSERT_TRUE(p.status.ok()) << p.message;
  const Config& c = p.config;
  EXPECT_EQ(c.workers, 3u);
  EXPECT_EQ(c.idle_timeout.count(), 60000);
  EXPECT_EQ(c.config_file, p.path);
  // In file order, not toml++'s sorted order.
  ASSERT_EQ(c.clusters.size(), 2u);
  const ClusterConfig& zeta = c.clusters[0];
  EXPECT_EQ(zeta.name, "zeta");
  EXPECT_EQ(zeta.policy, balancer::Policy::kMaglev);
  EXPECT_EQ(zeta.connect_timeout.count(), 4000);
  EXPECT_EQ(zeta.queue_timeout.count(), 4000);  // unset: its own connect timeout
  EXPECT_EQ(zeta.health.interval.count(), 5000);  // the top-level default
  ASSERT_EQ(zeta.backends.size(), 2u);
  EXPECT_EQ(zeta.backends[0].text, "127.0.0.1:8080");
  EXPECT_EQ(zeta.backends[0].weight, 2u);
  EXPECT_EQ(zeta.backends[0].proxy_protocol, ProxyProtocol::kV1);
  const BackendConfig& b = zeta.backends[1];
  EXPECT_EQ(b.text, "127.0.0.1:8081");
  EXPECT_EQ(b.weight, 0u);
  EXPECT_EQ(b.max_connections, 7u);
  EXPECT_TRUE(b.backup);
  EXPECT_EQ(b.proxy_protocol, ProxyProtocol::kV2);
  EXPECT_EQ(b.health_interval->count(), 1000);
  EXPECT_EQ(b.health_timeout->count(), 250);
  EXPECT_EQ(*b.health_rise, 4u);
  EXPECT_EQ(*b.health_fall, 5u);
  const ClusterConfig& alpha = c.clusters[1];
  EXPECT_EQ(alpha.policy, balancer::Policy::kLeastConn);
  EXPECT_EQ(alpha.health.interval.count(), 10000);
  EXPECT_EQ(alpha.queue_timeout.count(), 0);
  EXPECT_EQ(alpha.backends.at(0).address.family(), AF_UNIX);
  // The first cluster, in file order.
  EXPECT_EQ(c.clusters.at(0).backends.size(), 2u);
  EXPECT_EQ(c.clusters.at(0).policy, balancer::Policy::kMaglev);
  EXPECT_EQ(c.clusters.at(0).connect_timeout.count(), 4000);

  ASSERT_EQ(c.listen.size(), 2u);
  const ListenConfig& plain = c.listen[0];
  EXPECT_EQ(plain.name, "listener-1");
  EXPECT_EQ(plain.cluster, "zeta");
  EXPECT_TRUE(plain.accept_proxy);  // the top-level default
  EXPECT_EQ(plain.deny.size(), 1u);
  EXPECT_FALSE(plain.idle_timeout.has_value());
  const ListenConfig& tls = c.listen[1];
  EXPECT_EQ(tls.name, "tls");
  EXPECT_EQ(tls.address.to_string(), "[::]:8443");
  EXPECT_TRUE(tls.v6only);
  EXPECT_TRUE(tls.cluster.empty());
  ASSERT_EQ(tls.sni_routes.size(), 2u);
  EXPECT_EQ(tls.sni_routes[0].server_name, "a.example.com");  // lower case
  EXPECT_EQ(tls.sni_routes[0].cluster, "alpha");
  EXPECT_EQ(tls.sni_routes[1].server_name, "*.example.com");
  EXPECT_EQ(tls.sni_default, "alpha");
  EXPECT_EQ(tls.tls_inspect_timeout.count(), 2000);
  EXPECT_EQ(tls.trusted_proxies.size(), 1u);
  EXPECT_EQ(tls.proxy_header_timeout.count(), 1000);
  EXPECT_EQ(tls.allow.size(), 1u);
  EXPECT_EQ(tls.deny.size(), 1u);  // no list of its own: the global one
  EXPECT_EQ(tls.max_connections, 100u);
  EXPECT_EQ(tls.idle_timeout->count(), 3'600'000);
  EXPECT_EQ(tls.fin_timeout->count(), 5000);
  EXPECT_EQ(tls.max_connection_duration->count(), 7'200'000);
}

TEST(TomlConfig, ExampleFileIsValid) {
  Parsed p = parse_args({"--config", "examples/ringlb.toml"});
  ASSERT_TRUE(p.status.ok()) << p.message;
  EXPECT_EQ(p.config.listen.size(), 5u);
  EXPECT_EQ(p.config.clusters.size(), 4u);
  size_t backends = 0;
  for (const ClusterConfig& c : p.config.clusters) backends += c.backends.size();
  EXPECT_EQ(backends, 9u);
  ASSERT_EQ(p.config.clusters[0].names.size(), 1u);  // web.internal:8080, resolved at run time
  EXPECT_EQ(p.config.clusters[0].names[0].max_connections, 500u);
}

// Every ```toml block of a Markdown page, in order.
std::vector<std::string> toml_blocks(const std::string& page) {
  std::ifstream in(page);
  std::vector<std::string> blocks;
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line == "```toml") {
      inside = true;
      blocks.emplace_back();
    } else if (inside && line == "```") {
      inside = false;
    } else if (inside) {
      blocks.back() += line + "\n";
    }
  }
  return blocks;
}

// The docs' examples are whole configs a reader may copy: each one runs as written.
TEST(TomlConfig, DocsExamplesAreValid) {
  for (const char* page : {"docs/configuration.md", "README.md"}) {
    const std::vector<std::string> blocks = toml_blocks(page);
    ASSERT_FALSE(blocks.empty()) << page << " has no ```toml block";
    for (size_t i = 0; i < blocks.size(); ++i) {
      Parsed p = parse_toml(blocks[i]);
      EXPECT_TRUE(p.status.ok()) << page << ", toml block " << i + 1 << ": " << p.message;
    }
  }
}

// The file's structure in docs/configuration.md: two clusters, a plain and an SNI listener.
TEST(TomlConfig, ConfigurationStructureExample) {
  const std::vector<std::string> blocks = toml_blocks("docs/configuration.md");
  ASSERT_GE(blocks.size(), 5u) << "docs/configuration.md has fewer examples than it had";
  Parsed p = parse_toml(blocks[0]);
  ASSERT_TRUE(p.status.ok()) << p.message;
  ASSERT_EQ(p.config.clusters.size(), 2u);
  ASSERT_EQ(p.config.listen.size(), 2u);
  EXPECT_EQ(p.config.clusters[0].policy, balancer::Policy::kLeastConn);
  EXPECT_EQ(p.config.listen[0].cluster, "web");
  EXPECT_EQ(p.config.listen[1].sni_routes.size(), 2u);
  EXPECT_EQ(p.config.listen[1].sni_default, "web");
}

// README's first config: one cluster behind one listener.
TEST(TomlConfig, ReadmeFirstConfig) {
  const std::vector<std::string> blocks = toml_blocks("README.md");
  ASSERT_FALSE(blocks.empty()) << "README.md has no ```toml block";
  Parsed p = parse_toml(blocks[0]);
  ASSERT_TRUE(p.status.ok()) << p.message;
  EXPECT_EQ(p.config.clusters.size(), 1u);
  EXPECT_EQ(p.config.listen.size(), 1u);
}

const char kOneCluster[] = R"(workers = 2
health-interval = "5s"
[cluster.web]
backends = ["127.0.0.1:8080"]
[cluster.api]
health-interval = "9s"
backends = ["127.0.0.1:9000"]
[[listener]]
address = "127.0.0.1:0"
cluster = "web"
)";

TEST(TomlConfig, FlagsReplaceTopLevelKeys) {
  Parsed p = parse_toml(kOneCluster, {"--workers", "5", "--health-interval", "7s", "--allow", "10.0.0.0/8"});
  ASSERT_TRUE(p.status.ok()) << p.message;
  EXPECT_EQ(p.config.workers, 5u);
  EXPECT_EQ(p.config.clusters[0].health.interval.count(), 7000);  // the default, replaced
  EXPECT_EQ(p.config.clusters[1].health.interval.count(), 9000);  // its own, kept
  EXPECT_EQ(p.config.listen[0].allow.size(), 1u);
  // Defaulted flags (only --help's text) do not replace anything.
  EXPECT_EQ(parse_toml(kOneCluster).config.clusters[0].health.interval.count(), 5000);
}

TEST(TomlConfig, ListenAndBackendOnlyWithAFileWithoutServices) {
  Parsed refused = parse_toml(kOneCluster, {"--backend", "127.0.0.1:1"});
  EXPECT_FALSE(refused.status.ok());
  EXPECT_NE(refused.message.find("--backend cannot be combined with " + refused.path), std::string::npos)
      << refused.message;
  Parsed globals = parse_toml("workers = 2\nbalance = \"random2\"\n",
                              {"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1"});
  ASSERT_TRUE(globals.status.ok()) << globals.message;
  EXPECT_EQ(globals.config.workers, 2u);
  EXPECT_EQ(globals.config.clusters.at(0).name, "default");
  EXPECT_EQ(globals.config.clusters.at(0).policy, balancer::Policy::kRandom2);
  EXPECT_EQ(globals.config.listen.at(0).cluster, "default");
  Parsed neither = parse_toml("workers = 2\n");
  EXPECT_FALSE(neither.status.ok());
  EXPECT_NE(neither.message.find("no --listen address given (and " + neither.path), std::string::npos)
      << neither.message;
}

TEST(TomlConfig, MetricsFalseAndTheFlag) {
  const std::string file = "metrics = false\nmetrics-listen = \"127.0.0.1:1\"\n";
  const std::vector<std::string> flat = {"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1"};
  EXPECT_FALSE(parse_toml(file, flat).config.metrics_enabled);
  std::vector<std::string> flag = flat;
  flag.insert(flag.end(), {"--metrics-listen", "127.0.0.1:2"});
  EXPECT_TRUE(parse_toml(file, flag).config.metrics_enabled);  // the flag wins
}

struct Broken {
  std::string text;
  int line;
  std::string key;
  std::string says;  // part of the message after "FILE:LINE: KEY: "
};

const char kGood[] = "[cluster.web]\nbackends = [\"127.0.0.1:8080\"]\n";  // lines 1-2
const char kListener[] = "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n";

TEST(TomlConfig, BrokenFilesNameFileLineAndKey) {
  const std::string good = kGood, listener = kListener;
  const std::vector<Broken> cases = {
      {"idel-timeout = \"5s\"\n" + good + listener, 1, "idel-timeout", "unknown key (did you mean 'idle-timeout'?)"},
      {"workers = \"two\"\n" + good + listener, 1, "workers", "invalid value \"two\": expected a whole number from 1 to 256"},
      {"\nworkers = 257\n" + good + listener, 2, "workers", "expected a whole number from 1 to 256"},
      {"idle-timeout = \"577h\"\n" + good + listener, 1, "idle-timeout", "at most 576h (24 days)"},
      {"idle-timeout = 5\n" + good + listener, 1, "idle-timeout", "expected a duration such as \"5s\""},
      {"[cluster.web]\nbackends = [{ address = \"127.0.0.1:1\", weight = 1001 }]\n" + listener, 2,
       "cluster.web.backends[0].weight", "expected a whole number from 0 to 1000"},
      {"[cluster.web]\nbackends = [{ address = \"127.0.0.1:1\", weight = -1 }]\n" + listener, 2,
       "cluster.web.backends[0].weight", "invalid value -1"},
      {"[cluster.web]\nbackends = [\n  \"127.0.0.1:1\",\n  { address = \"127.0.0.1:2\", wieght = 2 },\n]\n" + listener,
       4, "cluster.web.backends[1].wieght", "unknown key (did you mean 'weight'?)"},
      {"[cluster.web]\nbackends = [\"non_sense!:80\"]\n" + listener, 2, "cluster.web.backends[0]", "non_sense!:80"},
      {"[cluster.web]\nbackends = [{ address = \"127.0.0.1:1\", send-proxy = \"v3\" }]\n" + listener, 2,
       "cluster.web.backends[0].send-proxy", "expected \"v1\", \"v2\" or \"none\""},
      {good + "\n[cluster.api]\nbalance = \"roundrobin\"\n" + listener, 4, "cluster.api", "no backends"},
      {good + "balance = \"maglev\"\nmaglev-table-size = 65536\n" + listener, 4, "cluster.web.maglev-table-size",
       "must be prime"},
      {good + "balance = \"maglev\"\npolicy = \"leastconn\"\n" + listener, 4, "cluster.web.policy",
       "the same setting as balance"},
      {good + "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"wbe\"\n", 5, "listener[0].cluster",
       "no cluster 'wbe' (defined: web)"},
      {good + "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\nsni = [{ name = \"a.example.com\", cluster = \"web\" }]\n",
       6, "listener[0].sni", "cluster or sni, not both"},
      {good + "[[listener]]\naddress = \"127.0.0.1:0\"\n", 3, "listener[0]", "needs cluster = \"NAME\" or sni"},
      {good + "[[listener]]\ncluster = \"web\"\n", 3, "listener[0]", "address is required"},
      {good + "[[listener]]\naddress = \"127.0.0.1:80\"\ncluster = \"web\"\n[[listener]]\naddress = \"127.0.0.1:80\"\ncluster = \"web\"\n",
       7, "listener[1].address", "127.0.0.1:80 is also the address of listener[0] (line 3)"},
      {good + "[[listener]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n[[listener]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n",
       7, "listener[1].name", "'a' is also the name of listener[0] (line 3)"},
      {good + "[[listener]]\naddress = \"127.0.0.1:0\"\nsni = [{ name = \"a.*.example.com\", cluster = \"web\" }]\n",
       5, "listener[0].sni[0].name", "'a.*.example.com' is not a server name"},
      {good + "[[listener]]\naddress = \"127.0.0.1:0\"\nsni = [\n  { name = \"a.example.com\", cluster = \"web\" },\n  { name = \"A.example.com\", cluster = \"web\" },\n]\n",
       7, "listener[0].sni[1].name", "'a.example.com' is already routed by sni[0]"},
      {good + "[[listener]]\naddress = \"127.0.0.1:0\"\nsni = [{ name = \"a.example.com\", cluster = \"web\" }]\nsni-default = \"api\"\n",
       6, "listener[0].sni-default", "no cluster 'api'"},
      {good + listener + "v6only = true\n", 6, "listener[0].v6only", "needs an IPv6 address"},
      {good + listener + "trusted-proxies = [\"10.0.0.0/8\"]\n", 6, "listener[0].trusted-proxies",
       "only used with accept-proxy = true"},
      {good + listener + "accept-proxy = true\ntrusted-proxies = [\"10.0.0.1/8\"]\n", 7, "listener[0].trusted-proxies",
       "'10.0.0.1/8'"},
      {good + listener + "max-connections = 1000001\n", 6, "listener[0].max-connections",
       "expected a whole number from 0 to 1000000"},
      {good + listener + "max-connections-per-source = 1000001\n", 6, "listener[0].max-connections-per-source",
       "expected a whole number from 0 to 1000000"},
      {good + listener + "connection-rate-per-source = 10\n", 6, "listener[0].connection-rate-per-source",
       "expected a rate such as \"10/s\""},
      {good + listener + "connection-rate-per-source = \"10/h\"\n", 6, "listener[0].connection-rate-per-source",
       "expected N/s or N/m"},
      {good + listener + "connection-rate-per-source = \"1000001/s\"\n", 6, "listener[0].connection-rate-per-source",
       "N from 0 to 1000000"},
      {good + listener + "connection-burst-per-source = 5\n", 6, "listener[0].connection-burst-per-source",
       "only used with connection-rate-per-source"},
      {good + listener + "source-table-size = 0\n", 6, "listener[0].source-table-size",
       "expected a whole number from 1 to 1000000"},
      {"source-table-size = 1000001\n" + good + listener, 1, "source-table-size", "expected a whole number from 1 to 1000000"},
      {good + "[listener]\naddress = \"127.0.0.1:0\"\n", 3, "listener", "expected [[listener]] tables"},
      {"[cluster.\"web app\"]\nbackends = [\"127.0.0.1:1\"]\n" + listener, 1, "cluster.web app", "not a valid name"},
      {good + listener, 0, "", ""},  // (the control: this one is fine)
      {"listen = 127.0.0.1:0\n", 1, "toml syntax", "the INI form is gone"},
      {"workers = 2\n" + good + "[cluster.web]\nbackends = [\"127.0.0.1:2\"]\n" + listener, 4, "toml syntax",
       "cannot redefine existing table 'cluster.web'"},
      {good + listener + "\nlisten = \"127.0.0.1:1\"\n", 7, "listener[0].listen", "unknown key"},
      {"listen = \"127.0.0.1:0\"\n" + good + listener, 1, "listen", "the INI form is gone"},
  };
  for (const Broken& b : cases) {
    Parsed p = parse_toml(b.text);
    if (b.line == 0) {
      EXPECT_TRUE(p.status.ok()) << p.message;
      continue;
    }
    EXPECT_FALSE(p.status.ok()) << b.text;
    const std::string where = p.path + ":" + std::to_string(b.line) + ": " + b.key + ": ";
    // The first error is the one meant (each file has one mistake), at the start of a line.
    EXPECT_EQ(p.message.rfind(where, 0), 0u) << "expected " << where << "\ngot: " << p.message << "\nfor:\n" << b.text;
    const std::string first = p.message.substr(0, p.message.find('\n'));
    EXPECT_NE(first.find(b.says, where.size()), std::string::npos)
        << "expected '" << b.says << "' in: " << first;
  }
}

// Found by the config fuzzer: an array quoted in an error spanned lines (toml++ prints arrays on
// several), so the lines after the first named no file. Each error is one line.
TEST(TomlConfig, AnErrorQuotingAnArrayOrAControlCharacterIsOneLine) {
  const std::string listener = "[cluster.a]\nbackends = [\"127.0.0.1:1\"]\n[[listener]]\naddress = \"127.0.0.1:0\"\n"
                               "cluster = \"a\"\n";
  Parsed p = parse_toml("[resolvers]\nnameservers = [\n  \"127.0.0.1:53\",\n  \"::zz\",\n]\n" + listener);
  ASSERT_FALSE(p.status.ok());
  const std::vector<std::string> errors = p.status.lines();
  ASSERT_EQ(errors.size(), 1u) << p.message;
  EXPECT_EQ(errors[0].rfind(p.path + ":2: resolvers.nameservers: invalid value [", 0), 0u) << errors[0];
  Parsed named = parse_toml("[cluster.\"a\\nb\"]\nbackends = [\"127.0.0.1:1\"]\n" + listener);
  ASSERT_FALSE(named.status.ok());
  for (const std::string& e : named.status.lines()) EXPECT_EQ(e.rfind(named.path + ":", 0), 0u) << e;
  EXPECT_NE(errors[0].find("[ '127.0.0.1:53', '::zz' ]"), std::string::npos) << errors[0];
}

TEST(TomlConfig, CountsBeyondTheRegistrysSizesAreRefusedAtTheirLine) {
  std::string listeners = kGood;  // lines 1-2; listener i starts at line 3 + 3i
  for (int i = 0; i < 513; ++i) listeners += kListener;
  Parsed p = parse_toml(listeners);
  ASSERT_FALSE(p.status.ok());
  EXPECT_EQ(p.message, p.path + ":1539: listener[512]: more than 512 listeners");
  std::string clusters;
  for (int i = 0; i < 257; ++i) clusters += "[cluster.c" + std::to_string(i) + "]\nbackends = [\"127.0.0.1:1\"]\n";
  p = parse_toml(clusters + "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"c0\"\n");
  ASSERT_FALSE(p.status.ok());
  EXPECT_EQ(p.message, p.path + ":513: cluster.c256: more than 256 clusters");
  std::string backends = "[cluster.web]\nbackends = [\n";
  for (int i = 0; i < 1025; ++i) backends += "  \"127.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) + ":1\",\n";
  p = parse_toml(backends + "]\n" + kListener);
  ASSERT_FALSE(p.status.ok());
  EXPECT_EQ(p.message, p.path + ":1027: cluster.web.backends[1024]: more than 1024 backends in all clusters together");
}

TEST(TomlConfig, PerSourceLimitsPerListenerWithTopLevelDefaults) {
  Parsed p = parse_toml("max-connections-per-source = 7\n" + std::string(kGood) +
                        "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n"
                        "connection-rate-per-source = \"30/m\"\nconnection-burst-per-source = 4\nsource-table-size = 9\n"
                        "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\nmax-connections-per-source = 0\n");
  ASSERT_TRUE(p.status.ok()) << p.message;
  ASSERT_EQ(p.config.listen.size(), 2u);
  const ListenConfig& a = p.config.listen[0];
  EXPECT_EQ(a.max_connections_per_source, 7u);  // the top-level default
  EXPECT_EQ(a.connection_rate_per_source.count, 30u);
  EXPECT_EQ(a.connection_rate_per_source.per, Millis(60'000));
  EXPECT_EQ(a.connection_burst_per_source, 4u);
  EXPECT_EQ(a.source_table_size, 9u);
  EXPECT_TRUE(a.source_limited());
  const ListenConfig& b = p.config.listen[1];
  EXPECT_EQ(b.max_connections_per_source, 0u);
  EXPECT_EQ(b.connection_rate_per_source.count, 0u);
  EXPECT_EQ(b.source_table_size, 16384u);
  EXPECT_FALSE(b.source_limited());
}

TEST(TomlConfig, EveryErrorIsReportedInLineOrder) {
  // toml++ hands out a table's keys sorted (backlog before workers): the errors still come in
  // the file's order.
  Parsed p = parse_toml(
      "workers = 0\n"                                     // 1
      "backlog = 0\n"                                     // 2
      "[cluster.web]\n"                                   // 3
      "backends = [{ address = \"127.0.0.1:1\", weight = 5000 }]\n"  // 4
      "[[listener]]\n"                                    // 5
      "cluster = \"nope\"\n"                              // 6
      "address = \"127.0.0.1:0\"\n");                     // 7
  ASSERT_FALSE(p.status.ok());
  EXPECT_EQ(p.message, p.path + ":1: workers: invalid value 0: expected a whole number from 1 to 256\n" +
                           p.path + ":2: backlog: invalid value 0: expected a whole number from 1 to 65535\n" +
                           p.path + ":4: cluster.web.backends[0].weight: invalid value 5000: expected a whole number from 0 to 1000\n" +
                           p.path + ":6: listener[0].cluster: no cluster 'nope' (defined: web)");
}

// A long array is printed by toml++ over several lines; in an error it is one line, so that every
// line of the message starts with FILE:LINE (found by the config fuzzer).
TEST(TomlConfig, ALongArrayInAnErrorStaysOnOneLine) {
  Parsed p = parse_toml("[etcd]\nendpoints = [\"http://127.0.0.1:2379\", \"https://10.0.0.2:" + std::string(100, 'l') +
                        "\"]\n[cluster.web]\nbackends = [\"127.0.0.1:1\"]\n"
                        "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n");
  ASSERT_FALSE(p.status.ok());
  for (const std::string& line : p.status.lines()) EXPECT_EQ(line.rfind(p.path + ":", 0), 0u) << line;
  EXPECT_NE(p.message.find(":2: etcd.endpoints: invalid value [ 'http://127.0.0.1:2379', 'https://10.0.0.2:llllllllllll...: "),
            std::string::npos)
      << p.message;
}

// One rule for every duration (setters.h: Zero): 0 turns off what may be absent, and is refused
// where nothing may go without a timeout. Every duration key of the table is in one list.
TEST(TomlConfig, ZeroDurationsAreOffOrRefused) {
  const std::string listener = "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n";
  const std::string etcd = "[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\n";
  struct Case {
    std::string where;  // "top", "cluster", "listener", "backend", "etcd", "resolvers"
    std::string key;
  };
  auto file = [&](const Case& c) {
    const std::string zero = c.key + " = \"0s\"\n";
    std::string text = c.where == "top" ? zero : "";
    if (c.where == "etcd") text += etcd + zero;
    if (c.where == "resolvers") text += "[resolvers]\n" + zero;
    text += "[cluster.web]\n" + (c.where == "cluster" ? zero : "");
    text += c.where == "backend" ? "backends = [{ address = \"127.0.0.1:1\", " + c.key + " = \"0s\" }]\n"
                                 : "backends = [\"127.0.0.1:1\"]\n";
    return text + listener + (c.where == "listener" ? zero : "");
  };
  const std::vector<Case> off = {
      {"top", "drain-timeout"},        {"top", "max-connection-duration"}, {"listener", "max-connection-duration"},
      {"cluster", "health-interval"},  {"backend", "health-interval"},     {"cluster", "queue-timeout"},
      {"cluster", "slow-start"},       {"backend", "slow-start"},          {"cluster", "resolve-hold"},
  };
  for (const Case& c : off) {
    const Parsed p = parse_toml(file(c));
    EXPECT_TRUE(p.status.ok()) << c.where << " " << c.key << ": " << p.message;
  }
  const std::vector<Case> refused = {
      {"top", "idle-timeout"},           {"listener", "idle-timeout"},       {"top", "fin-timeout"},
      {"listener", "fin-timeout"},       {"cluster", "health-timeout"},      {"backend", "health-timeout"},
      {"cluster", "connect-timeout"},    {"cluster", "resolve-min-interval"}, {"cluster", "resolve-max-interval"},
      {"listener", "proxy-header-timeout"}, {"listener", "tls-inspect-timeout"}, {"etcd", "dial-timeout"},
      {"etcd", "request-timeout"},       {"etcd", "reconnect-min"},          {"etcd", "reconnect-max"},
      {"resolvers", "timeout"},
  };
  for (const Case& c : refused) {
    const Parsed p = parse_toml(file(c));
    EXPECT_FALSE(p.status.ok()) << c.where << " " << c.key;
    EXPECT_NE(p.message.find(c.key + ": invalid value \"0s\": must be above zero"), std::string::npos)
        << c.where << " " << c.key << ": " << p.message;
  }
  // The same on the command line and in a backend's ",key=value" suffix.
  EXPECT_FALSE(parse_args({"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--idle-timeout", "0s"}).status.ok());
  EXPECT_TRUE(parse_args({"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--health-interval", "0s"}).status.ok());
  const Parsed suffix = parse_args({"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1,health-timeout=0s"});
  EXPECT_NE(suffix.message.find("health-timeout '0s': must be above zero"), std::string::npos) << suffix.message;
}

TEST(TomlConfig, UnreadableFile) {
  Parsed p = parse_args({"--config", "/nonexistent/ringlb.toml"});
  EXPECT_FALSE(p.status.ok());
  EXPECT_EQ(p.message, "cannot read config file '/nonexistent/ringlb.toml': No such file or directory");
}

}  // namespace
}  // namespace ringlb

namespace ringlb {
namespace {

// Found by tools/fuzz.sh (config_fuzzer, UBSan): toml++ 3.3.0 reaches __builtin_unreachable()
// in is_non_ascii_horizontal_whitespace() for some non-ASCII characters outside a string, here
// U+FEFB after a bare key. TOML allows non-ASCII only in strings and comments, so such a file is
// refused, naming the line, before toml++ sees it.
TEST(TomlConfigFuzzFindings, NonAsciiOutsideStringsIsRefusedBeforeTheParser) {
  TomlFile file;
  std::vector<std::string> errors;
  EXPECT_FALSE(load(file, "wot.c\xef\xbb\xbb\"\n", &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("f.toml:1: ", 0), 0u) << errors[0];
  EXPECT_NE(errors[0].find("non-ASCII"), std::string::npos) << errors[0];
  errors.clear();
  EXPECT_FALSE(load(file, "workers = 2\n\xc2\xa1 = 1\n", &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("f.toml:2: ", 0), 0u) << errors[0];
  // The second finding: a quote in the middle of a bare value opens no string for toml++.
  errors.clear();
  EXPECT_FALSE(load(file, "3isten = 121.0.0.1trusts54.'.0.11;8\xef\xba\xbf:\n", &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("f.toml:1: toml syntax: a non-ASCII"), std::string::npos) << errors[0];
  // The fourth (a 10-million-run config_fuzzer, U+043D): a '[' straight after a bare value
  // opens no array for toml++, so the quote after it opens no string either.
  errors.clear();
  EXPECT_FALSE(load(file, "[clsster.web]\nbackends = 71.w.04[\"0.1:8\xd0\xbd" "0\",r = _web\"\n", &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("f.toml:2: toml syntax: a non-ASCII"), std::string::npos) << errors[0];
  // Nor one after a second '=' outside an inline table, or a '{' after a bare value.
  for (const char* bad : {"a = 1 = \"\xc3\xa9\"\n", "a = 1{\"\xc3\xa9\"\n"}) {
    errors.clear();
    EXPECT_FALSE(load(file, bad, &errors)) << bad;
    ASSERT_EQ(errors.size(), 1u) << bad;
    EXPECT_NE(errors[0].find("non-ASCII"), std::string::npos) << errors[0];
  }
  // The fifth (config_fuzzer again, U+FEFE in what the prefilter took for a multi-line string):
  // whatever the context, toml++ never sees a code point its whitespace table cannot classify.
  errors.clear();
  {
    // tests/fuzz/corpus/config/finding_multiline_unsafe_code_point
    const std::string crash = "acc =\x22" "\x22" "\x22" "\x22" "\x22" ":6work\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "r = \x22" "db\x22" "\x0a" "ac''''c'12(8]\x0a" "b\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "name\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "!\x5c" "\x5c" "\x5c" "\xef" "\xbb" "\xbe" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "\x5c" "ax-connec'''";
    // Line 3 is code to the scan (refused as such); were it taken for a literal string, no escape
    // could stand for U+FEFE there, and it would be refused as that.
    std::string safe, why;
    EXPECT_EQ(toml_prefilter::prepare(crash, &safe, &why), 3u);
    EXPECT_EQ(why.rfind("a non-ASCII character outside a string", 0), 0u) << why;
    EXPECT_EQ(toml_prefilter::prepare("a = '\xef\xbb\xbe'\n", &safe, &why), 1u);
    EXPECT_EQ(why, "U+FEFE in a literal string: toml++ 3.3.0 cannot read it safely there; write it in a \"...\" string");
    // Where it is taken for a basic string, it is given as its escape.
    ASSERT_EQ(toml_prefilter::prepare("a = \"\"\"x\xef\xbb\xbe\"\"\"\n", &safe, &why), 0u) << why;
    EXPECT_EQ(safe, "a = \"\"\"x\\uFEFE\"\"\"\n");
    
load(file, crash, &errors);  // under --config=asan, UBSan would stop here
  }
  // The table's unsafe ranges, and a few safe points beside them.
  for (char32_t c : {0xA1, 0xE9, 0x499, 0x2C5E, 0x3057, 0xFB26, 0xFEFE}) EXPECT_FALSE(toml_prefilter::safe_code_point(c)) << static_cast<unsigned>(c);
  for (char32_t c : {0x7F, 0xA0, 0x49A, 0x20AC, 0x2C5D, 0x3000, 0x3058, 0xFB25, 0xFEFF, 0x1F600}) EXPECT_TRUE(toml_prefilter::safe_code_point(c)) << static_cast<unsigned>(c);
  // In a basic string such a character is given to toml++ as its \u escape (the same string),
  // in a comment it is dropped; in a literal string, where no escape exists, it is refused.
  const Parsed p = parse_toml("# caf\xc3\xa9\naccess-log = \"/tmp/caf\xc3\xa9 \xef\xbb\xbe\"\n"
                              "[cluster.web]\nbackends = [\"127.0.0.1:1\"]\n"
                              "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n");
  ASSERT_TRUE(p.status.ok()) << p.message;
  EXPECT_EQ(p.config.access_log, "/tmp/caf\xc3\xa9 \xef\xbb\xbe");
  errors.clear();
  EXPECT_FALSE(load(file, "name = 'caf\xc3\xa9'\n", &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("f.toml:1: toml syntax: U+00E9"), std::string::npos) << errors[0];
  // Nor does a one-line string left open.
  errors.clear();
  EXPECT_FALSE(load(file, "a = 'caf\xc3\xa9\n", &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("non-ASCII"), std::string::npos) << errors[0];
  // Found by the corpus replay under --config=asan (toml++'s assertions on): a NUL after '['
  // trips an assertion in toml++'s parse_key. TOML allows no control character but tab (and
  // the line ends) anywhere, so they are refused first, naming the line.
  errors.clear();
  EXPECT_FALSE(load(file, std::string("workers = 1\n[\0luster.web]\n", 26), &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("f.toml:2: toml syntax: a control character"), std::string::npos) << errors[0];
  errors.clear();
  EXPECT_FALSE(load(file, "a = \"x\x7fy\"\n", &errors));
  EXPECT_EQ(errors.size(), 1u);
  // And a table header with no name before its line ends ("[" then a newline): toml++ 3.3.0
  // asserts (its release build assumes) that a key starts there.
  for (const char* bad : {"[\nluster.web]\n", "[[ \n", "a. = 1\n", "[a.]\n"}) {
    errors.clear();
    EXPECT_FALSE(load(file, bad, &errors)) << bad;
    ASSERT_EQ(errors.size(), 1u) << bad;
    EXPECT_NE(errors[0].find("f.toml:1: toml syntax:"), std::string::npos) << errors[0];
  }
  // In strings and comments it is fine, whatever the quoting.
  errors.clear();
  EXPECT_TRUE(load(file, "# caf\xc3\xa9 \xef\xbb\xbb\n"
                   "a = \"caf\xc3\xa9 \\\" \xef\xbb\xbb\"\n"
                   "b = 'caf\xe2\x82\xac'\n"
                   "c = \"\"\"\nmulti \xef\xbb\xbb \"\" line\n\"\"\"\n"
                   "d = '''\nlit \xe2\x82\xac ''\n'''\n"
                   "e = 1 # caf\xc3\xa9\n"
                   "f.\"caf\xc3\xa9\" = 2\n"
                   "g = [\"\xc3\xa9\", '\xe2\x82\xac']\n"
                   "h = { i = \"\xc3\xa9\", k = [\"\xc3\xa9\"] }\n"
                   "j = [\n  [\n    1.5\n  ],\n]\n",
                   &errors))
      << (errors.empty() ? "" : errors[0]);
}

}  // namespace
}  // namespace ringlb
