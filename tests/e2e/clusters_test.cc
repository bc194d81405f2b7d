// Clusters at run time: each listener's clients reach only its cluster's backends, under that
// cluster's policy, and a reload changes one cluster while the other keeps serving (or moves a
// listener to another cluster: removed and added again).
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include "tests/support/backends.h"
#include "tests/support/load.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;

// What the name_handler backend behind port answers a client from `source`; "" on failure.
std::string quoted(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& i : items) out += (out.empty() ? "\"" : ", \"") + i + "\"";
  return out;
}

// Two clusters, alpha and beta, each behind a listener of its own (front-a, front-b).
std::string write_two_clusters(const std::string& path, const std::string& alpha_policy,
                               const std::vector<std::string>& alpha, const std::string& beta_policy,
                               const std::vector<std::string>& beta, const std::string& listener_a_extra = "") {
  std::ofstream toml(path);
  toml << "workers = 2\nhealth-interval = \"0s\"\n\n"
       << "[cluster.alpha]\nbalance = \"" << alpha_policy << "\"\nbackends = [" << quoted(alpha) << "]\n\n"
       << "[cluster.beta]\nbalance = \"" << beta_policy << "\"\nbackends = [" << quoted(beta) << "]\n\n"
       << "[[listener]]\nname = \"front-a\"\naddress = \"127.0.0.1:0\"\n" << listener_a_extra
       << "cluster = \"alpha\"\n\n"
       << "[[listener]]\nname = \"front-b\"\naddress = \"127.0.0.1:0\"\ncluster = \"beta\"\n";
  return path;
}

TEST(Clusters, EachListenerReachesOnlyItsClustersBackendsUnderItsPolicy) {
  Backend a1(name_handler("a1")), a2(name_handler("a2")), b1(name_handler("b1")), b2(name_handler("b2"));
  const std::string toml = write_two_clusters(::testing::TempDir() + "/two.toml", "roundrobin",
                                              {a1.address(), a2.address()}, "maglev", {b1.address(), b2.address()});
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();

  // Round robin in alpha: both of its backends, nothing of beta's.
  std::map<std::string, int> alpha;
  for (int i = 0; i < 20; ++i) ++alpha[name_from(lb.port(0))];
  EXPECT_EQ(alpha.size(), 2u);
  EXPECT_GE(alpha["a1"], 5);
  EXPECT_GE(alpha["a2"], 5);

  // Maglev in beta: a source keeps its backend; sources spread over both; nothing of alpha's.
  std::map<std::string, int> beta;
  for (int host = 1; host <= 24; ++host) {
    const std::string source = "127.0.0." + std::to_string(host);
    const std::string first = name_from(lb.port(1), source.c_str());
    ASSERT_TRUE(first == "b1" || first == "b2") << "from " << source << ": '" << first << "'";
    ++beta[first];
    for (int again = 0; again < 3; ++again) EXPECT_EQ(name_from(lb.port(1), source.c_str()), first) << source;
  }
  EXPECT_EQ(beta.size(), 2u) << "maglev sent every source to one backend";

  // Backend metrics carry their cluster.
  EXPECT_GE(lb.metric("ringlb_backend_connect_attempts_total",
                      {"cluster=\"alpha\"", "backend=\"" + a1.address() + "\""}), 5);
  EXPECT_EQ(lb.metric("ringlb_backend_connect_attempts_total",
                      {"cluster=\"beta\"", "backend=\"" + a1.address() + "\""}), -1);
  EXPECT_GE(lb.metric("ringlb_backend_connect_attempts_total", {"cluster=\"beta\""}), 96);
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(Clusters, AnAddressInTwoClustersIsTwoBackends) {
  Backend shared(name_handler("s")), other(name_handler("o"));
  const std::string toml = write_two_clusters(::testing::TempDir() + "/shared.toml", "roundrobin",
                                              {shared.address()}, "roundrobin", {shared.address(), other.address()});
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(name_from(lb.port(0)), "s");
  for (int i = 0; i < 4; ++i) name_from(lb.port(1));
  // Counted apart: alpha's count is its own 4, whatever beta's clients did.
  const std::string b = "backend=\"" + shared.address() + "\"";
  EXPECT_EQ(lb.metric("ringlb_backend_connect_attempts_total", {"cluster=\"alpha\"", b}), 4);
  EXPECT_EQ(lb.metric("ringlb_backend_connect_attempts_total", {"cluster=\"beta\"", b}) +
                lb.metric("ringlb_backend_connect_attempts_total", {"cluster=\"beta\"", "backend=\"" + other.address() + "\""}),
            4);
}

TEST(Clusters, ReloadChangesOneClusterWhileTheOtherKeepsServing) {
  Backend a1(name_handler("a1")), a2(name_handler("a2"));
  Backend b1(name_handler("b1")), b2(name_handler("b2")), b3(name_handler("b3"));
  const std::string toml = ::testing::TempDir() + "/reload.toml";
  write_two_clusters(toml, "roundrobin", {a1.address(), a2.address()}, "roundrobin", {b1.address(), b2.address()});
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();
  const uint16_t alpha_port = lb.port(0);
  ClientLoop alpha([alpha_port] {
    const std::string name = name_from(alpha_port);
    return name == "a1" || name == "a2";
  });
  std::this_thread::sleep_for(300ms);

  // beta: maglev over b2 and b3 (b1 removed); alpha as it was.
  write_two_clusters(toml, "roundrobin", {a1.address(), a2.address()}, "maglev", {b2.address(), b3.address()});
  kill(lb.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return lb.output().find("ringlb: info: reloaded: 4 backends") != std::string::npos; }))
      << lb.output();
  EXPECT_NE(lb.output().find("(alpha: roundrobin, beta: maglev); changed: beta\n"), std::string::npos) << lb.output();
  const int b1_before = b1.accepted();
  for (int host = 1; host <= 16; ++host) {
    const std::string source = "127.0.0." + std::to_string(host);
    const std::string first = name_from(lb.port(1), source.c_str());
    EXPECT_TRUE(first == "b2" || first == "b3") << source << ": '" << first << "'";
    EXPECT_EQ(name_from(lb.port(1), source.c_str()), first) << "maglev keeps a source on its backend";
  }
  EXPECT_EQ(b1.accepted(), b1_before) << "the removed backend got new clients";
  std::this_thread::sleep_for(300ms);
  alpha.finish();
  EXPECT_EQ(alpha.failed(), 0) << "of " << alpha.done() + alpha.failed();
  EXPECT_GT(alpha.done(), 50);

  // A listener moved to another cluster by a reload is removed and added again (under a new
  // index, at a new port for 127.0.0.1:0): its old socket refuses, the new one reaches beta.
  write_two_clusters(toml, "roundrobin", {a1.address()}, "maglev", {b2.address(), b3.address()});
  std::string moved;
  {
    std::ifstream in(toml);
    moved.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t at = moved.find("cluster = \"alpha\"\n\n[[listener]]");
  ASSERT_NE(at, std::string::npos);
  moved.replace(at, 17, "cluster = \"beta\"");
  std::ofstream(toml) << moved;
  kill(lb.pid(), SIGHUP);
  const std::regex added_re("listener 'front-a' added: listening on [0-9.]+:([0-9]+)");
  std::smatch m;
  std::string out;
  ASSERT_TRUE(eventually([&] {
    out = lb.output();
    return std::regex_search(out, m, added_re);
  })) << lb.output();
  const uint16_t moved_port = static_cast<uint16_t>(std::stoi(m[1]));
  EXPECT_NE(out.find("listener 'front-a' (127.0.0.1:" + std::to_string(lb.port(0)) + ") removed"),
            std::string::npos) << out;
  EXPECT_FALSE(connect_loopback(lb.port(0))) << "the removed socket still accepts";
  const std::string first = name_from(moved_port);
  EXPECT_TRUE(first == "b2" || first == "b3") << first;
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(Clusters, AReloadAddsAndRemovesAClusterNoListenerNames) {
  Backend a(name_handler("a")), b(name_handler("b")), spare(name_handler("s"));
  const std::string toml = ::testing::TempDir() + "/spare.toml";
  write_two_clusters(toml, "roundrobin", {a.address()}, "roundrobin", {b.address()});
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();
  std::ofstream(toml, std::ios::app) << "\n[cluster.spare]\nhealth-interval = \"50ms\"\nbackends = [\""
                                     << spare.address() << "\"]\n";
  kill(lb.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return lb.output().find("changed: spare\n") != std::string::npos; })) << lb.output();
  // Not served (no listener names it), but checked.
  EXPECT_TRUE(eventually([&] { return spare.accepted() >= 2; })) << "the added cluster's backend is not checked";
  write_two_clusters(toml, "roundrobin", {a.address()}, "roundrobin", {b.address()});
  kill(lb.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return lb.output().find("changed: spare (removed)\n") != std::string::npos; }))
      << lb.output();
  std::this_thread::sleep_for(200ms);
  const int checks = spare.accepted();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(spare.accepted(), checks) << "the removed cluster's backend is still checked";
  EXPECT_EQ(name_from(lb.port(0)), "a");
  EXPECT_EQ(name_from(lb.port(1)), "b");
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

}  // namespace
}  // namespace ringlb::testing
