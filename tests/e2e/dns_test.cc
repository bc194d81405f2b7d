// DNS discovery against a real DNS server (dnsmasq, tests/support/dnsmasq.h): a name's A records
// change and traffic follows within the interval plus the TTL without a failed connection;
// NXDOMAIN and a server that stops answering keep the last good set (counted, logged once) until
// resolve-hold withdraws it; SRV weights and priorities; reloads add and remove names.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/dnsmasq.h"
#include "tests/support/net.h"
#include "tests/support/process.h"
#include "tests/support/streams.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The one-letter name of the backend a new connection reaches; 0 if none answered.
char served_by(uint16_t port) {
  Fd fd = connect_loopback(port);
  if (!fd) return 0;
  set_recv_timeout(fd.get(), 3000);
  char name = 0;
  return read_exact(fd.get(), &name, 1) ? name : 0;
}

// A client connecting every 10 ms in the background: who served each connection, and when.
class Traffic {
 public:
  explicit Traffic(uint16_t port) : thread_([this, port] {
      while (!stop_.load()) {
        const char name = served_by(port);
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (name == 0) ++failures_;
          last_[name] = Clock::now();
          ++count_[name];
        }
        std::this_thread::sleep_for(10ms);
      }
    }) {}
  ~Traffic() {
    stop_ = true;
    thread_.join();
  }
  int failures() {
    std::lock_guard<std::mutex> lock(mu_);
    return failures_;
  }
  // When `name` last served a connection (the epoch if never).
  Clock::time_point last(char name) {
    std::lock_guard<std::mutex> lock(mu_);
    return last_.count(name) ? last_[name] : Clock::time_point{};
  }
  int count(char name) {
    std::lock_guard<std::mutex> lock(mu_);
    return count_[name];
  }
  void reset() {
    std::lock_guard<std::mutex> lock(mu_);
    count_.clear();
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  int failures_ = 0;
  std::map<char, Clock::time_point> last_;
  std::map<char, int> count_;
  std::thread thread_;
};

// Backends '2', '3', '4' on 127.0.0.2-4, one port, as behind one name.
struct ThreeHosts {
  ThreeHosts() : b2(name_then_echo_handler('2'), "127.0.0.2", 0) {
    b3 = std::make_unique<Backend>(name_then_echo_handler('3'), "127.0.0.3", b2.port());
    b4 = std::make_unique<Backend>(name_then_echo_handler('4'), "127.0.0.4", b2.port());
  }
  bool ok() const { return b2.port() != 0 && b3->port() == b2.port() && b4->port() == b2.port(); }
  Backend b2;
  std::unique_ptr<Backend> b3, b4;
};

std::string hosts(const std::vector<int>& last_octets, const std::string& name = "app.test") {
  std::string out;
  for (int n : last_octets) out += "127.0.0." + std::to_string(n) + " " + name + "\n";
  return out;
}

std::string write_config(const std::string& path, const Dnsmasq& dns, const std::string& backends,
                         const std::string& cluster_extra = "",
                         const std::string& resolvers = "timeout = \"300ms\"\nattempts = 1\n") {
  std::ofstream(path) << "workers = 2\nhealth-interval = \"200ms\"\nhealth-timeout = \"200ms\"\n"
                      << "resolve-min-interval = \"200ms\"\nresolve-max-interval = \"30s\"\n\n"
                      << "[resolvers]\nnameservers = [\"" << dns.server() << "\"]\n" << resolvers << "\n"
                      << "[cluster.web]\n" << cluster_extra << "backends = [" << backends << "]\n\n"
                      << "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n";
  return path;
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(Dns, ARecordsTwoThreeOneTrafficFollowsWithoutAFailedConnection) {
  TempDir dir;
  ThreeHosts backends;
  ASSERT_TRUE(backends.ok());
  Dnsmasq dns(dir.path());
  ASSERT_TRUE(dns.start(hosts({2, 3})));
  const uint16_t port = backends.b2.port();
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_config(dir.path() + "/lb.toml", dns,
                                                 "\"app.test:" + std::to_string(port) + "\"")}))
      << lb.output();
  // Start-up waited for the first answer: the first clients are served.
  EXPECT_NE(served_by(lb.port()), 0) << lb.output();
  EXPECT_EQ(lb.metric("ringlb_dns_addresses", {"name=\"app.test\""}), 2);

  Traffic traffic(lb.port());
  ASSERT_TRUE(eventually([&] { return traffic.count('2') > 0 && traffic.count('3') > 0; })) << lb.output();
  EXPECT_EQ(traffic.count('4'), 0);
  // A stream to '3', which stays through both changes (its backend keeps its connections).
  LongStream stream(lb.port(), 150);  // 6 s
  ASSERT_TRUE(eventually([&] { return stream.connected.load(); }));

  // 2 -> 3: the TTL is 1 s (resolve-max-interval is 30 s: the TTL decides), so the name is
  // looked up every second; '4' within interval + TTL.
  const auto bound = 1s + 1s + 500ms;  // interval + TTL, and a scheduling margin
  auto changed = Clock::now();
  dns.set_hosts(hosts({2, 3, 4}));
  ASSERT_TRUE(eventually([&] { return traffic.count('4') > 0; }, 5s)) << lb.output();
  EXPECT_LT(traffic.last('4') - changed, bound);
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_dns_addresses", {"name=\"app.test\""}) == 3; }));

  // 3 -> 1: only '4' after interval + TTL; the others still run (they only left the name).
  changed = Clock::now();
  dns.set_hosts(hosts({4}));
  ASSERT_TRUE(eventually([&] { return lb.metric("ringlb_dns_addresses", {"name=\"app.test\""}) == 1; }, 5s));
  std::this_thread::sleep_for(300ms);
  EXPECT_LT(std::max(traffic.last('2'), traffic.last('3')) - changed, bound);
  traffic.reset();
  std::this_thread::sleep_for(500ms);
  EXPECT_GT(traffic.count('4'), 10);
  EXPECT_EQ(traffic.count('2') + traffic.count('3'), 0);
  EXPECT_EQ(traffic.failures(), 0) << lb.output();

  stream.thread.join();
  if (stream.served_by == '4') GTEST_SKIP() << "the stream went to '4', which stayed throughout";
  EXPECT_TRUE(stream.ok.load()) << "a stream to a backend that left the name was cut";
  EXPECT_GE(lb.metric("ringlb_dns_resolutions_total", {"name=\"app.test\"", "result=\"ok\""}), 3);
}

TEST(Dns, NxdomainAndASilentServerKeepTheLastGoodSetUntilTheHold) {
  TempDir dir;
  ThreeHosts backends;
  ASSERT_TRUE(backends.ok());
  Dnsmasq dns(dir.path());
  ASSERT_TRUE(dns.start(hosts({2, 3})));
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_config(dir.path() + "/lb.toml", dns,
                                                 "\"app.test:" + std::to_string(backends.b2.port()) + "\"",
                                                 "resolve-hold = \"4s\"\n")}))
      << lb.output();
  auto failed = [&](const char* result) {
    const double n = lb.metric("ringlb_dns_resolutions_total", {"name=\"app.test\"", "result=\"" + std::string(result) + "\""});
    return n < 0 ? 0 : n;
  };
  Traffic traffic(lb.port());

  // NXDOMAIN (the name left the hosts file) for 2.5 s: counted, both backends still serve.
  dns.set_hosts("");
  ASSERT_TRUE(eventually([&] { return failed("nxdomain") >= 3; }, 5s)) << lb.output();
  traffic.reset();
  std::this_thread::sleep_for(500ms);
  EXPECT_GT(traffic.count('2'), 0);
  EXPECT_GT(traffic.count('3'), 0);
  EXPECT_EQ(lb.metric("ringlb_dns_addresses", {"name=\"app.test\""}), 2);
  dns.set_hosts(hosts({2, 3}));
  ASSERT_TRUE(eventually([&] { return lb.output().find("app.test: resolves again") != std::string::npos; }, 5s));

  // The server stops answering (SIGSTOP): timeouts, counted; the set is kept.
  dns.pause();
  ASSERT_TRUE(eventually([&] { return failed("timeout") >= 3; }, 5s)) << lb.output();
  traffic.reset();
  std::this_thread::sleep_for(500ms);
  EXPECT_GT(traffic.count('2'), 0);
  EXPECT_GT(traffic.count('3'), 0);
  dns.resume();
  ASSERT_TRUE(eventually([&] { return count_of(lb.output(), "app.test: resolves again") == 2; }, 5s))
      << lb.output();
  EXPECT_EQ(traffic.failures(), 0) << lb.output();

  // The server is gone: kept for the 4 s hold, then withdrawn (clients of the now empty
  // cluster are closed).
  const auto killed = Clock::now();
  dns.kill();
  ASSERT_TRUE(eventually([&] { return failed("unreachable") + failed("timeout") >= 5; }, 5s)) << lb.output();
  EXPECT_EQ(lb.metric("ringlb_dns_addresses", {"name=\"app.test\""}), 2);
  EXPECT_NE(served_by(lb.port()), 0);
  ASSERT_TRUE(eventually([&] { return lb.metric("ringlb_dns_addresses", {"name=\"app.test\""}) == 0; }, 8s));
  EXPECT_GE(Clock::now() - killed, 3500ms);
  EXPECT_TRUE(eventually([&] { return served_by(lb.port()) == 0; }));

  // Logged once per change of state, not per failed lookup.
  const std::string out = lb.output();
  EXPECT_EQ(count_of(out, "app.test: lookup failed"), 3u) << out;
  EXPECT_EQ(count_of(out, "app.test: lookups failing for 4s"), 1u) << out;
  EXPECT_GT(failed("nxdomain") + failed("timeout") + failed("unreachable"), 9);
}

TEST(Dns, SrvWeightsAndPrioritiesBackupOnlyWhenThePrimariesAreDown) {
  TempDir dir;
  Backend b1(name_then_echo_handler('1')), b2(name_then_echo_handler('2')), b3(name_then_echo_handler('3'));
  Dnsmasq dns(dir.path());
  auto srv = [&](int w1, int w2) {
    return std::vector<std::string>{
        "_app._tcp.test,b1.test," + std::to_string(b1.port()) + ",10," + std::to_string(w1),
        "_app._tcp.test,b2.test," + std::to_string(b2.port()) + ",10," + std::to_string(w2),
        "_app._tcp.test,b3.test," + std::to_string(b3.port()) + ",20,100"};
  };
  ASSERT_TRUE(dns.start("127.0.0.1 b1.test\n127.0.0.1 b2.test\n127.0.0.1 b3.test\n", srv(100, 300)));
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_config(dir.path() + "/lb.toml", dns, "\"srv:_app._tcp.test\"",
                                                 "health-fall = 1\n")}))
      << lb.output();
  auto split = [&] {
    std::map<char, int> n;
    for (int i = 0; i < 40; ++i) ++n[served_by(lb.port())];
    return n;
  };
  // SRV weights 100:300 are ringlb weights 333:1000: a quarter and three quarters; the backup
  // (priority 20) gets nothing.
  std::map<char, int> n = split();
  EXPECT_NEAR(n['1'], 10, 2) << lb.output();
  EXPECT_NEAR(n['2'], 30, 2);
  EXPECT_EQ(n['3'], 0);
  EXPECT_EQ(n[0], 0);

  // New weights: a restart of dnsmasq on its port; ringlb follows at the next lookup.
  ASSERT_TRUE(dns.restart(srv(300, 100)));
  ASSERT_TRUE(eventually([&] { n = split(); return n['1'] > n['2']; }, 5s)) << lb.output();
  n = split();  // the one above may straddle the change
  EXPECT_NEAR(n['1'], 30, 2);
  EXPECT_NEAR(n['2'], 10, 2);
  EXPECT_EQ(n['3'], 0);

  // The primaries go down: health checks mark them, and the backup serves.
  b1.stop();
  b2.stop();
  ASSERT_TRUE(eventually([&] { return served_by(lb.port()) == '3'; }, 5s)) << lb.output();
  n = split();
  EXPECT_EQ(n['3'], 40);
}

TEST(Dns, AAndAaaaRecordsBothBecomeBackendsNamedIpPort) {
  TempDir dir;
  Backend v4(name_then_echo_handler('4'), "127.0.0.2", 0);
  Backend v6(name_then_echo_handler('6'), "::1", v4.port());
  ASSERT_NE(v4.port(), 0);
  ASSERT_EQ(v6.port(), v4.port()) << "no IPv6 loopback here?";
  Dnsmasq dns(dir.path());
  ASSERT_TRUE(dns.start("127.0.0.2 dual.test\n::1 dual.test\n"));
  const std::string port = std::to_string(v4.port());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_config(dir.path() + "/lb.toml", dns, "\"dual.test:" + port + "\"")}))
      << lb.output();
  std::map<char, int> n;
  for (int i = 0; i < 20; ++i) ++n[served_by(lb.port())];
  EXPECT_EQ(n['4'], 10) << lb.output();
  EXPECT_EQ(n['6'], 10);
  // Each address is a backend of its own, named IP:PORT.
  EXPECT_EQ(lb.metric("ringlb_backend_connect_attempts_total", {"backend=\"127.0.0.2:" + port + "\""}), 10);
  EXPECT_EQ(lb.metric("ringlb_backend_connect_attempts_total", {"backend=\"[::1]:" + port + "\""}), 10);
}

TEST(Dns, StartUpWaitsForTheFirstAnswersButNoLongerThanOneLookup) {
  TempDir dir;
  ThreeHosts backends;
  ASSERT_TRUE(backends.ok());
  Dnsmasq dns(dir.path());
  ASSERT_TRUE(dns.start(hosts({2})));
  const std::string config = write_config(dir.path() + "/lb.toml", dns,
                                          "\"app.test:" + std::to_string(backends.b2.port()) + "\"", "",
                                          "timeout = \"1500ms\"\nattempts = 1\n");
  // The server answers 400 ms late: start-up waits for it, and the first client is served.
  dns.pause();
  std::thread late([&] {
    std::this_thread::sleep_for(400ms);
    dns.resume();
  });
  auto started = Clock::now();
  RinglbProcess lb;
  const bool up = lb.start({"--config", config});
  late.join();
  ASSERT_TRUE(up) << lb.output();
  EXPECT_EQ(served_by(lb.port()), '2') << lb.output();
  EXPECT_GE(Clock::now() - started, 350ms);
  // No answer at all: it serves after one lookup's time (1.5 s), without the name.
  dns.pause();
  started = Clock::now();
  RinglbProcess alone;
  ASSERT_TRUE(alone.start({"--config", config})) << alone.output();
  const auto waited = Clock::now() - started;
  EXPECT_GE(waited, 1400ms);
  EXPECT_LT(waited, 4s);
  EXPECT_NE(alone.output().find("app.test: lookup failed (timeout); no addresses yet"), std::string::npos)
      << alone.output();
  EXPECT_EQ(served_by(alone.port()), 0);
  dns.resume();
}

TEST(Dns, AReloadStartsNewNamesAndStopsRemovedOnes) {
  TempDir dir;
  ThreeHosts backends;
  ASSERT_TRUE(backends.ok());
  Dnsmasq dns(dir.path());
  ASSERT_TRUE(dns.start(hosts({2}, "a.test") + hosts({3}, "b.test")));
  const std::string port = std::to_string(backends.b2.port());
  const std::string path = dir.path() + "/lb.toml";
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_config(path, dns, "\"a.test:" + port + "\"")})) << lb.output();
  EXPECT_EQ(served_by(lb.port()), '2');
  write_config(path, dns, "\"b.test:" + port + "\", \"127.0.0.4:" + port + "\"");
  kill(lb.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return lb.metric("ringlb_dns_addresses", {"name=\"b.test\""}) == 1; })) << lb.output();
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_dns_addresses", {"name=\"a.test\""}) < 0; }));
  std::map<char, int> n;
  for (int i = 0; i < 20; ++i) ++n[served_by(lb.port())];
  EXPECT_EQ(n['2'], 0);
  EXPECT_EQ(n['3'], 10);
  EXPECT_EQ(n['4'], 10);
  EXPECT_NE(lb.output().find("cluster 'web': a.test: no longer configured"), std::string::npos);
}

}  // namespace
}  // namespace ringlb::testing
