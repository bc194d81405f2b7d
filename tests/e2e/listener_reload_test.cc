// Listeners at a reload: one added (bound through the acceptor ring, serving at once), one
// removed (refusing new clients, its live connections drained within --drain-timeout), one that
// stays and serves throughout; a listener whose address is busy fails alone.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/load.h"
#include "tests/support/net.h"
#include "tests/support/process.h"
#include "tests/support/streams.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;

struct ListenerSpec {
  std::string name, address, cluster;
};

std::string write_config(const std::string& path, const std::string& alpha_policy, const std::string& alpha,
                         const std::string& beta, const std::vector<ListenerSpec>& listeners,
                         const std::string& drain = "10s") {
  std::ofstream toml(path);
  toml << "workers = 2\nhealth-interval = \"0s\"\ndrain-timeout = \"" << drain << "\"\n\n"
       << "[cluster.alpha]\nbalance = \"" << alpha_policy << "\"\nbackends = [\"" << alpha << "\"]\n\n"
       << "[cluster.beta]\nbackends = [\"" << beta << "\"]\n\n";
  for (const ListenerSpec& l : listeners) {
    toml << "[[listener]]\nname = \"" << l.name << "\"\naddress = \"" << l.address << "\"\ncluster = \""
         << l.cluster << "\"\n\n";
  }
  return path;
}

// The port the reload log gives to listener `name` ("listener 'NAME' added: listening on A:P").
uint16_t added_port(RinglbProcess& lb, const std::string& name) {
  std::smatch m;
  const std::string out = lb.output();
  const std::regex re("listener '" + name + "' added: listening on [0-9.]+:([0-9]+)");
  return std::regex_search(out, m, re) ? static_cast<uint16_t>(std::stoi(m[1])) : 0;
}

// 0 when a client connects; otherwise the errno of the failed connect.
int connect_errno(uint16_t port) {
  Fd fd = connect_loopback(port);
  return fd ? 0 : errno;
}

// What the name-then-echo backend behind `port` answers first; 0 on failure.
char name_from(uint16_t port) {
  Fd fd = connect_loopback(port);
  char name = 0;
  if (!fd) return 0;
  set_recv_timeout(fd.get(), 5000);
  return read_exact(fd.get(), &name, 1) ? name : 0;
}

TEST(ListenerReload, AddsOneRemovesOneAndTheOneThatStaysNeverFails) {
  Backend a(name_then_echo_handler('a')), b(name_then_echo_handler('b'));
  const std::string toml = ::testing::TempDir() + "/relisten.toml";
  write_config(toml, "roundrobin", a.address(), b.address(),
               {{"stay", "127.0.0.1:0", "alpha"}, {"gone", "127.0.0.1:0", "beta"}});
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();
  const uint16_t stay = lb.port(0), gone = lb.port(1);
  ASSERT_EQ(name_from(gone), 'b');

  // A stream on the listener about to go, started before the reload; load on the one that stays.
  LongStream stream(gone, 40);
  ASSERT_TRUE(stream.connected);
  ClientLoop load([stay] { return name_then_echo_once(stay); }, 3);
  std::this_thread::sleep_for(400ms);

  write_config(toml, "maglev", a.address(), b.address(),
               {{"stay", "127.0.0.1:0", "alpha"}, {"fresh", "127.0.0.1:0", "beta"}});
  kill(lb.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return lb.output().find("ringlb: info: reloaded:") != std::string::npos; }, 5s))
      << lb.output();
  const std::string out = lb.output();
  EXPECT_NE(out.find("changed: alpha"), std::string::npos) << out;
  EXPECT_NE(out.find("listener 'gone' (127.0.0.1:" + std::to_string(gone) + ") removed"), std::string::npos) << out;
  const uint16_t fresh = added_port(lb, "fresh");
  ASSERT_NE(fresh, 0) << out;

  // The new listener serves beta; the removed one refuses; the stream it had goes on.
  EXPECT_EQ(name_from(fresh), 'b');
  EXPECT_EQ(connect_errno(gone), ECONNREFUSED);
  std::this_thread::sleep_for(1s);
  load.finish();
  EXPECT_EQ(load.failed(), 0) << "of " << load.done() + load.failed();
  EXPECT_GT(load.done(), 100);
  if (stream.thread.joinable()) stream.thread.join();
  EXPECT_TRUE(stream.ok) << "the removed listener's stream broke";
  EXPECT_LE(lb.closed_total("drain"), 0) << "the stream ended before the drain deadline: nothing to close";

  // A second reload gives the removed name back, under a new index, at a new address.
  write_config(toml, "maglev", a.address(), b.address(),
               {{"stay", "127.0.0.1:0", "alpha"}, {"fresh", "127.0.0.1:0", "beta"},
                {"gone", "127.0.0.1:0", "alpha"}});
  kill(lb.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return added_port(lb, "gone") != 0; }, 5s)) << lb.output();
  EXPECT_EQ(name_from(added_port(lb, "gone")), 'a');
  EXPECT_EQ(name_from(fresh), 'b');
  EXPECT_EQ(name_from(stay), 'a');
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(ListenerReload, ARemovedListenersConnectionsAreClosedAtTheDrainDeadline) {
  Backend a(name_then_echo_handler('a')), b(name_then_echo_handler('b'));
  const std::string toml = ::testing::TempDir() + "/relisten-drain.toml";
  write_config(toml, "roundrobin", a.address(), b.address(),
               {{"stay", "127.0.0.1:0", "alpha"}, {"gone", "127.0.0.1:0", "beta"}}, "1s");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();
  Fd idle = connect_loopback(lb.port(1));
  char name = 0;
  set_recv_timeout(idle.get(), 10000);
  ASSERT_TRUE(read_exact(idle.get(), &name, 1));

  write_config(toml, "roundrobin", a.address(), b.address(), {{"stay", "127.0.0.1:0", "alpha"}}, "1s");
  const auto reloaded = std::chrono::steady_clock::now();
  kill(lb.pid(), SIGHUP);
  // Closed by ringlb once the drain deadline passed (not at once, not never), counted as drain.
  EXPECT_EQ(read_to_eof(idle.get(), 10000), "");
  const auto waited = std::chrono::steady_clock::now() - reloaded;
  EXPECT_GE(waited, 800ms);
  EXPECT_LE(waited, 5s);
  EXPECT_TRUE(eventually([&] { return lb.closed_total("drain") == 1; })) << lb.scrape();
  EXPECT_EQ(name_from(lb.port(0)), 'a');
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(ListenerReload, ABusyAddressFailsThatListenerOnly) {
  Backend a(name_then_echo_handler('a')), b(name_then_echo_handler('b'));
  uint16_t busy = 0;
  Fd holder = listen_loopback(&busy);
  const std::string toml = ::testing::TempDir() + "/relisten-busy.toml";
  write_config(toml, "roundrobin", a.address(), b.address(), {{"stay", "127.0.0.1:0", "alpha"}});
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();

  write_config(toml, "maglev", a.address(), b.address(),
               {{"stay", "127.0.0.1:0", "alpha"}, {"taken", "127.0.0.1:" + std::to_string(busy), "beta"},
                {"other", "127.0.0.1:0", "beta"}});
  kill(lb.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return lb.output().find("ringlb: info: reloaded:") != std::string::npos; }, 5s))
      << lb.output();
  const std::string out = lb.output();
  EXPECT_NE(out.find("ringlb: error: reload: listener 'taken' not added: cannot listen on 127.0.0.1:" +
                     std::to_string(busy) + ": bind: Address already in use"),
            std::string::npos)
      << out;
  // The rest of the reload is applied: the other new listener serves, the cluster changed.
  EXPECT_NE(out.find("changed: alpha"), std::string::npos) << out;
  ASSERT_NE(added_port(lb, "other"), 0) << out;
  EXPECT_EQ(name_from(added_port(lb, "other")), 'b');
  EXPECT_EQ(name_from(lb.port(0)), 'a');

  // Once the address is free, the next reload adds it.
  holder = Fd();
  kill(lb.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return added_port(lb, "taken") == busy; }, 5s)) << lb.output();
  EXPECT_EQ(name_from(busy), 'b');
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

}  // namespace
}  // namespace ringlb
