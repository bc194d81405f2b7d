// etcd discovery against a real etcd: keys put and deleted steer traffic within 1 s; ringlb
// serves through an etcd outage and catches up after; a compaction while its watch is behind
// forces a fresh read; a malformed value is skipped while the other keys apply; a reload
// changes the prefix watched; user/password, TLS with a client certificate and endpoint
// fail-over work; the shutdown does not wait for a request that etcd never answers.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "tests/support/backends.h"
#include "tests/support/etcd.h"
#include "tests/support/load.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string value(const Backend& b, const std::string& extra = "") {
  return "{\"address\": \"" + b.address() + "\"" + extra + "}";
}

std::string write_config(const std::string& path, const EtcdServer& etcd, const std::string& prefix = "/ringlb/web/",
                         const std::string& etcd_extra = "") {
  std::ofstream(path) << "workers = 1\nhealth-interval = \"0s\"\n\n"
                      << "[etcd]\n"
                      << (etcd_extra.find("endpoints") == std::string::npos
                              ? "endpoints = [\"" + etcd.endpoint() + "\"]\n"
                              : "")
                      << etcd_extra
                      << "reconnect-min = \"50ms\"\nreconnect-max = \"300ms\"\n\n"
                      << "[cluster.web]\ndiscovery = \"etcd\"\netcd-prefix = \"" << prefix << "\"\n"
                      << "balance = \"roundrobin\"\n\n"
                      << "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n";
  return path;
}

// Connects until `done(answer)` holds for `streak` answers in a row; the time from `start` (the
// change) until the first of them, or a negative time on timeout.
template <typename Pred>
std::chrono::milliseconds until(uint16_t port, Pred done, int streak = 6, Clock::time_point start = Clock::now(),
                                std::chrono::seconds timeout = 10s) {
  int run = 0;
  Clock::time_point first{};
  while (Clock::now() - start < timeout) {
    const auto at = Clock::now();
    if (done(name_from(port))) {
      if (run++ == 0) first = at;
      if (run == streak) return std::chrono::duration_cast<std::chrono::milliseconds>(first - start);
    } else {
      run = 0;
    }
  }
  return -1ms;
}

std::set<std::string> answers(uint16_t port, int n = 12) {
  std::set<std::string> seen;
  for (int i = 0; i < n; ++i) seen.insert(name_from(port));
  return seen;
}

TEST(Etcd, PutAndDeleteMoveTrafficWithinASecond) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.start());
  Backend a(name_handler("a")), b(name_handler("b")), c(name_handler("c"));
  ASSERT_TRUE(etcd.put("/ringlb/web/a", value(a)));
  ASSERT_TRUE(etcd.put("/ringlb/web/b", value(b)));
  ASSERT_TRUE(etcd.put("/ringlb/other/c", value(c)));  // another prefix: not ours
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_config(::testing::TempDir() + "/etcd.toml", etcd)})) << lb.output();
  // Read before the first client (start-up waits for it).
  EXPECT_EQ(answers(lb.port()), (std::set<std::string>{"a", "b"}));

  // Timed from before etcdctl starts: its own ~30 ms are in the figure.
  auto t0 = Clock::now();
  ASSERT_TRUE(etcd.put("/ringlb/web/c", value(c)));
  const auto added = until(lb.port(), [](const std::string& n) { return n == "c"; }, 1, t0);
  EXPECT_GE(added.count(), 0) << lb.output();
  EXPECT_LT(added, 1000ms);
  EXPECT_EQ(answers(lb.port()), (std::set<std::string>{"a", "b", "c"}));

  t0 = Clock::now();
  ASSERT_TRUE(etcd.del("/ringlb/web/a"));
  const auto removed = until(lb.port(), [](const std::string& n) { return n == "b" || n == "c"; }, 6, t0);
  EXPECT_GE(removed.count(), 0) << lb.output();
  EXPECT_LT(removed, 1000ms);
  // drain = true: weight 0, no new clients.
  t0 = Clock::now();
  ASSERT_TRUE(etcd.put("/ringlb/web/b", value(b, ", \"drain\": true")));
  const auto drained = until(lb.port(), [](const std::string& n) { return n == "c"; }, 6, t0);
  EXPECT_GE(drained.count(), 0) << lb.output();
  EXPECT_LT(drained, 1000ms);
  printf("etcd write to traffic: added %lld ms, removed %lld ms, drained %lld ms\n",
         static_cast<long long>(added.count()), static_cast<long long>(removed.count()),
         static_cast<long long>(drained.count()));
  EXPECT_EQ(lb.metric("ringlb_etcd_watch_up", {"cluster=\"web\""}), 1);
  EXPECT_EQ(lb.metric("ringlb_etcd_backends", {"cluster=\"web\""}), 2);
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(Etcd, ServesThroughAnOutageAndCatchesUpAfter) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.start());
  Backend a(name_handler("a")), b(name_handler("b")), c(name_handler("c"));
  ASSERT_TRUE(etcd.put("/ringlb/web/a", value(a)));
  ASSERT_TRUE(etcd.put("/ringlb/web/b", value(b)));
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_config(::testing::TempDir() + "/outage.toml", etcd)})) << lb.output();
  const uint16_t port = lb.port();
  ClientLoop load([port] {
    const std::string name = name_from(port);
    return name == "a" || name == "b" || name == "c";
  }, 1, 5ms);
  std::this_thread::sleep_for(300ms);

  etcd.kill();
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_etcd_watch_up", {"cluster=\"web\""}) == 0; }, 3s));
  const int before = load.done();
  std::this_thread::sleep_for(1500ms);  // etcd down: the last good set serves
  EXPECT_GT(load.done(), before + 20);
  EXPECT_EQ(load.failed(), 0);
  EXPECT_EQ(answers(lb.port()), (std::set<std::string>{"a", "b"}));

  // Back with the same data; changed at once, before ringlb is watching again.
  ASSERT_TRUE(etcd.start());
  ASSERT_TRUE(etcd.put("/ringlb/web/c", value(c)));
  ASSERT_TRUE(etcd.del("/ringlb/web/a"));
  EXPECT_GE(until(lb.port(), [](const std::string& n) { return n == "b" || n == "c"; }).count(), 0) << lb.output();
  EXPECT_EQ(answers(lb.port()), (std::set<std::string>{"b", "c"}));
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_etcd_watch_up", {"cluster=\"web\""}) == 1; }, 3s));
  EXPECT_GE(lb.metric("ringlb_etcd_reconnects_total", {"cluster=\"web\""}), 1);
  load.finish();
  EXPECT_EQ(load.failed(), 0) << "of " << load.done();
  EXPECT_NE(lb.output().find("keeping its 2 backends"), std::string::npos) << lb.output();
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(Etcd, ACompactionPastTheWatchForcesAFreshRead) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.start());
  Backend a(name_handler("a")), b(name_handler("b")), c(name_handler("c"));
  ASSERT_TRUE(etcd.put("/ringlb/web/a", value(a)));
  ASSERT_TRUE(etcd.put("/ringlb/web/b", value(b)));
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_config(::testing::TempDir() + "/compact.toml", etcd)})) << lb.output();
  EXPECT_EQ(answers(lb.port()), (std::set<std::string>{"a", "b"}));

  // ringlb frozen, so its watch falls behind: etcd restarts (the watch is gone), the keys change
  // and the history of those changes is compacted away before ringlb can resume its watch.
  ASSERT_EQ(kill(lb.pid(), SIGSTOP), 0);
  etcd.kill();
  ASSERT_TRUE(etcd.start());
  ASSERT_TRUE(etcd.put("/ringlb/web/c", value(c)));
  ASSERT_TRUE(etcd.del("/ringlb/web/a"));
  const int64_t revision = etcd.revision();
  ASSERT_GT(revision, 0);
  ASSERT_TRUE(etcd.compact(revision));
  ASSERT_EQ(kill(lb.pid(), SIGCONT), 0);

  EXPECT_GE(until(lb.port(), [](const std::string& n) { return n == "b" || n == "c"; }).count(), 0) << lb.output();
  EXPECT_EQ(answers(lb.port()), (std::set<std::string>{"b", "c"}));
  EXPECT_GE(lb.metric("ringlb_etcd_resyncs_total", {"cluster=\"web\""}), 1);
  EXPECT_NE(lb.output().find("compacted the watch of /ringlb/web/"), std::string::npos) << lb.output();
  // And the fresh watch works: the next change arrives as an event.
  ASSERT_TRUE(etcd.put("/ringlb/web/a", value(a)));
  EXPECT_GE(until(lb.port(), [](const std::string& n) { return n == "a"; }, 1).count(), 0) << lb.output();
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(Etcd, AMalformedValueIsSkippedAndTheOtherKeysApply) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.start());
  Backend a(name_handler("a")), b(name_handler("b")), d(name_handler("d"));
  ASSERT_TRUE(etcd.put("/ringlb/web/a", value(a)));
  ASSERT_TRUE(etcd.put("/ringlb/web/b", "{\"address\": \"backend-b\"}"));
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_config(::testing::TempDir() + "/bad.toml", etcd)})) << lb.output();
  EXPECT_EQ(answers(lb.port()), (std::set<std::string>{"a"}));
  // Through the watch too: one more bad value (a misspelt field), one more good key.
  ASSERT_TRUE(etcd.put("/ringlb/web/c", value(d, ", \"wieght\": 3")));
  ASSERT_TRUE(etcd.put("/ringlb/web/d", value(d)));
  EXPECT_GE(until(lb.port(), [](const std::string& n) { return n == "d"; }, 1).count(), 0) << lb.output();
  EXPECT_EQ(answers(lb.port()), (std::set<std::string>{"a", "d"}));
  EXPECT_EQ(lb.metric("ringlb_etcd_bad_values_total", {"cluster=\"web\""}), 2);
  EXPECT_EQ(lb.metric("ringlb_etcd_keys", {"cluster=\"web\""}), 4);
  EXPECT_NE(lb.output().find("etcd key /ringlb/web/b skipped: address: "), std::string::npos) << lb.output();
  EXPECT_NE(lb.output().find("etcd key /ringlb/web/c skipped: unknown field 'wieght'"), std::string::npos);
  // Fixed, it joins.
  ASSERT_TRUE(etcd.put("/ringlb/web/b", value(b)));
  EXPECT_GE(until(lb.port(), [](const std::string& n) { return n == "b"; }, 1).count(), 0) << lb.output();
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(Etcd, AReloadWatchesTheNewPrefixAndDropsTheOld) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.start());
  Backend a(name_handler("a")), b(name_handler("b"));
  ASSERT_TRUE(etcd.put("/ringlb/web/a", value(a)));
  ASSERT_TRUE(etcd.put("/ringlb/next/b", value(b)));
  const std::string path = write_config(::testing::TempDir() + "/reload.toml", etcd);
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", path})) << lb.output();
  EXPECT_EQ(answers(lb.port()), (std::set<std::string>{"a"}));
  write_config(path, etcd, "/ringlb/next/");
  ASSERT_EQ(kill(lb.pid(), SIGHUP), 0);
  EXPECT_GE(until(lb.port(), [](const std::string& n) { return n == "b"; }).count(), 0) << lb.output();
  EXPECT_EQ(answers(lb.port()), (std::set<std::string>{"b"}));
  // The old prefix is no longer watched: its changes do nothing.
  ASSERT_TRUE(etcd.del("/ringlb/web/a"));
  ASSERT_TRUE(etcd.put("/ringlb/web/x", value(a)));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(answers(lb.port()), (std::set<std::string>{"b"}));
  EXPECT_EQ(lb.metric("ringlb_etcd_watch_up", {"prefix=\"/ringlb/web/\""}), -1);
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(Etcd, AuthenticatesWithUserAndPasswordAndFailsOverToTheLiveEndpoint) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.start());
  Backend a(name_handler("a")), b(name_handler("b"));
  ASSERT_TRUE(etcd.put("/ringlb/web/a", value(a)));
  ASSERT_TRUE(etcd.enable_auth("ringlb", "s3cret", "/ringlb/web/"));
  // The first endpoint refuses connections: every request moves on to the second.
  const std::string endpoints = "endpoints = [\"http://127.0.0.1:" + std::to_string(refused_port()) + "\", \"" +
                                etcd.endpoint() + "\"]\n";
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_config(::testing::TempDir() + "/auth.toml", etcd, "/ringlb/web/",
                                                 endpoints + "user = \"ringlb\"\npassword = \"s3cret\"\n")}))
      << lb.output();
  EXPECT_EQ(answers(lb.port()), (std::set<std::string>{"a"})) << lb.output();
  ASSERT_TRUE(etcd.put("/ringlb/web/b", value(b)));
  EXPECT_GE(until(lb.port(), [](const std::string& n) { return n == "b"; }, 1).count(), 0) << lb.output();
  // etcd restarts: the watch resumes without a range, so it must authenticate again first.
  etcd.kill();
  ASSERT_TRUE(etcd.start());
  ASSERT_TRUE(etcd.del("/ringlb/web/a"));
  EXPECT_GE(until(lb.port(), [](const std::string& n) { return n == "b"; }).count(), 0) << lb.output();
  // Resumed as a watch: without a token etcd would have canceled it ("user name is empty"),
  // which costs a full read.
  EXPECT_EQ(lb.metric("ringlb_etcd_resyncs_total", {"cluster=\"web\""}), 0) << lb.output();
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();

  // A wrong password: nothing is read, the cluster stays empty, and the log says why.
  RinglbProcess wrong;
  ASSERT_TRUE(wrong.start({"--config", write_config(::testing::TempDir() + "/wrong.toml", etcd, "/ringlb/web/",
                                                    "user = \"ringlb\"\npassword = \"nope\"\n")}))
      << wrong.output();
  EXPECT_EQ(name_from(wrong.port()), "");
  EXPECT_TRUE(eventually([&] { return wrong.output().find("authentication failed") != std::string::npos; }))
      << wrong.output();
  EXPECT_EQ(wrong.stop(SIGTERM), 0) << wrong.output();
}

TEST(Etcd, ReachesEtcdOverTlsWithAClientCertificate) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.enable_tls());
  ASSERT_TRUE(etcd.start());
  Backend a(name_handler("a")), b(name_handler("b"));
  ASSERT_TRUE(etcd.put("/ringlb/web/a", value(a)));
  const std::string t = etcd.tls_dir();
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_config(::testing::TempDir() + "/tls.toml", etcd, "/ringlb/web/",
                                                 "ca-file = \"" + t + "/ca.pem\"\ncert-file = \"" + t +
                                                     "/client.pem\"\nkey-file = \"" + t + "/client.key\"\n")}))
      << lb.output();
  EXPECT_EQ(answers(lb.port()), (std::set<std::string>{"a"})) << lb.output();
  ASSERT_TRUE(etcd.put("/ringlb/web/b", value(b)));
  EXPECT_GE(until(lb.port(), [](const std::string& n) { return n == "b"; }, 1).count(), 0) << lb.output();
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();

  // Without the client certificate etcd refuses the handshake: nothing is read, and it is logged.
  RinglbProcess anonymous;
  ASSERT_TRUE(anonymous.start({"--config", write_config(::testing::TempDir() + "/anon.toml", etcd, "/ringlb/web/",
                                                        "ca-file = \"" + t + "/ca.pem\"\n")}))
      << anonymous.output();
  EXPECT_EQ(name_from(anonymous.port()), "");
  EXPECT_NE(anonymous.output().find("reading the prefix: https://127.0.0.1:"), std::string::npos) << anonymous.output();
  EXPECT_EQ(anonymous.stop(SIGTERM), 0) << anonymous.output();
}

TEST(Etcd, StopsPromptlyWhileARequestHangs) {
  // An "etcd" that completes the TCP handshake (the kernel does) and never answers.
  uint16_t port = 0;
  Fd silent = listen_loopback(&port);
  EtcdServer unused;  // only for its endpoint syntax
  const std::string path = ::testing::TempDir() + "/hang.toml";
  write_config(path, unused, "/ringlb/web/",
               "endpoints = [\"http://127.0.0.1:" + std::to_string(port) + "\"]\nrequest-timeout = \"2s\"\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", path})) << lb.output();  // once the first read timed out
  std::this_thread::sleep_for(300ms);  // the next read is in progress now (2 s to its timeout)
  const auto t0 = Clock::now();
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
  EXPECT_LT(Clock::now() - t0, 1500ms) << lb.output();
}

}  // namespace
}  // namespace ringlb::testing
