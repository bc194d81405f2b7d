// Per-listener settings: allow/deny lists, max-connections (across workers) and the idle, fin
// and max-duration timeouts of one listener, while the other listener keeps the global ones.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Listener "own" (port 0) has `own` as its extra keys; listener "plain" (port 1) has none.
// Both go to one cluster of `backend`; `top` adds top-level keys.
std::string write_config(const std::string& name, const std::string& backend, const std::string& own,
                         const std::string& top = "") {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << "workers = 2\nhealth-interval = \"0s\"\n" << top << "\n[cluster.app]\nbackends = [\""
                      << backend << "\"]\n\n[[listener]]\nname = \"own\"\naddress = \"127.0.0.1:0\"\ncluster = \"app\"\n"
                      << own << "\n[[listener]]\nname = \"plain\"\naddress = \"127.0.0.1:0\"\ncluster = \"app\"\n";
  return path;
}

// A client from `source` whose 4 bytes come back through the echo backend.
Fd echoing_client(uint16_t port, const char* source = "127.0.0.1") {
  Fd fd = connect_loopback_from(source, port);
  if (!fd) return fd;
  set_recv_timeout(fd.get(), 5000);
  char back[4];
  if (!write_all(fd.get(), "ping", 4) || !read_exact(fd.get(), back, 4)) return Fd();
  return fd;
}

TEST(ListenerSettings, AllowAndDenyListsOfOneListener) {
  Backend echo(echo_handler());
  const std::string toml = write_config("acl.toml", echo.address(), "deny = [\"127.0.0.7/32\"]\n",
                                        "allow = [\"127.0.0.0/8\"]\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();
  EXPECT_TRUE(echoing_client(lb.port(0), "127.0.0.1"));
  EXPECT_FALSE(echoing_client(lb.port(0), "127.0.0.7")) << "denied by its listener's own list";
  EXPECT_TRUE(echoing_client(lb.port(1), "127.0.0.7")) << "the other listener has the global lists";
  EXPECT_TRUE(eventually([&] { return lb.closed_total("denied") == 1; }));
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

// A rule written as an IPv4-mapped IPv6 block is the IPv4 block it maps. It used to pass
// `ringlb check` and match no one: the deny let 127.0.0.1 in, the allow shut it out.
TEST(ListenerSettings, AnIpv4MappedRuleMatchesIpv4Clients) {
  Backend echo(echo_handler());
  const std::string toml = write_config("mapped.toml", echo.address(),
                                        "allow = [\"127.0.0.0/8\"]\ndeny = [\"::ffff:127.0.0.0/104\"]\n",
                                        "allow = [\"::ffff:127.0.0.0/104\"]\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();
  EXPECT_FALSE(echoing_client(lb.port(0), "127.0.0.1")) << "not denied by its listener's deny list";
  EXPECT_TRUE(echoing_client(lb.port(1), "127.0.0.1")) << "not allowed by the global allow list";
  EXPECT_TRUE(eventually([&] { return lb.closed_total("denied") == 1; }));
}

TEST(ListenerSettings, MaxConnectionsOfOneListenerAcrossWorkers) {
  Backend echo(echo_handler());
  const std::string toml = write_config("maxconn.toml", echo.address(), "max-connections = 3\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();
  // Held open, spread over both workers by the acceptor.
  std::vector<Fd> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(echoing_client(lb.port(0)));
    ASSERT_TRUE(held.back()) << i;
  }
  for (int i = 0; i < 3; ++i) {
    Fd over = connect_loopback(lb.port(0));
    ASSERT_TRUE(over);
    write_all(over.get(), "ping", 4);
    EXPECT_EQ(read_to_eof(over.get(), 5000), "") << "a fourth client of the listener was served";
  }
  EXPECT_TRUE(eventually([&] { return lb.closed_total("max_connections") == 3; })) << lb.closed_total("max_connections");
  // The other listener is not limited by it.
  std::vector<Fd> others;
  for (int i = 0; i < 5; ++i) {
    others.push_back(echoing_client(lb.port(1)));
    EXPECT_TRUE(others.back()) << i;
  }
  // A place freed is a place taken.
  held.pop_back();
  EXPECT_TRUE(eventually([&] { return static_cast<bool>(echoing_client(lb.port(0))); }));
  held.clear();  // so that stopping need not wait for the drain deadline
  others.clear();
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(ListenerSettings, IdleTimeoutOfOneListener) {
  Backend echo(echo_handler());
  const std::string toml = write_config("idle.toml", echo.address(), "idle-timeout = \"300ms\"\n", "idle-timeout = \"30s\"\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();
  Fd own = echoing_client(lb.port(0));
  Fd plain = echoing_client(lb.port(1));
  ASSERT_TRUE(own && plain);
  const auto t0 = Clock::now();
  EXPECT_EQ(read_to_eof(own.get(), 5000), "");
  EXPECT_LT(Clock::now() - t0, 2s);
  EXPECT_TRUE(eventually([&] { return lb.closed_total("idle_timeout") == 1; }));
  std::this_thread::sleep_for(500ms);
  char back[4];
  EXPECT_TRUE(write_all(plain.get(), "ping", 4) && read_exact(plain.get(), back, 4)) << "the other listener's client was closed";
  EXPECT_EQ(lb.closed_total("idle_timeout"), 1);
}

TEST(ListenerSettings, FinTimeoutOfOneListener) {
  // The backend answers its name and half-closes; the client keeps its side open.
  Backend named(name_handler("n"));
  const std::string toml = write_config("fin.toml", named.address(), "fin-timeout = \"300ms\"\n", "fin-timeout = \"30s\"\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();
  Fd own = connect_loopback(lb.port(0));
  Fd plain = connect_loopback(lb.port(1));
  EXPECT_EQ(read_to_eof(own.get(), 5000), "n");
  EXPECT_EQ(read_to_eof(plain.get(), 5000), "n");
  EXPECT_TRUE(eventually([&] { return lb.closed_total("fin_timeout") == 1; }, 3s));
  std::this_thread::sleep_for(700ms);
  EXPECT_EQ(lb.closed_total("fin_timeout"), 1) << "the other listener's half-closed client was closed";
  EXPECT_EQ(lb.metric("ringlb_connections_active"), 1);
}

TEST(ListenerSettings, MaxConnectionDurationOfOneListener) {
  Backend echo(echo_handler());
  const std::string toml = write_config("duration.toml", echo.address(), "max-connection-duration = \"500ms\"\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();
  Fd own = echoing_client(lb.port(0));
  Fd plain = echoing_client(lb.port(1));
  ASSERT_TRUE(own && plain);
  // Busy all along: closed anyway, at its duration.
  const auto t0 = Clock::now();
  bool own_open = true;
  char back[4];
  while (Clock::now() - t0 < 1500ms) {
    if (own_open) own_open = write_all(own.get(), "ping", 4) && read_exact(own.get(), back, 4);
    ASSERT_TRUE(write_all(plain.get(), "ping", 4) && read_exact(plain.get(), back, 4)) << "the other listener's client was closed";
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_FALSE(own_open);
  EXPECT_EQ(lb.closed_total("max_duration"), 1);
}

TEST(ListenerSettings, AReloadChangesAListenersLimitAndLists) {
  Backend echo(echo_handler());
  const std::string toml = write_config("reload.toml", echo.address(), "max-connections = 1\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();
  Fd first = echoing_client(lb.port(0));
  ASSERT_TRUE(first);
  EXPECT_FALSE(echoing_client(lb.port(0)));
  write_config("reload.toml", echo.address(), "max-connections = 2\ndeny = [\"127.0.0.9/32\"]\n");
  kill(lb.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return lb.output().find("reloaded") != std::string::npos; })) << lb.output();
  EXPECT_FALSE(echoing_client(lb.port(0), "127.0.0.9"));
  EXPECT_TRUE(echoing_client(lb.port(0)));
  EXPECT_TRUE(echoing_client(lb.port(1), "127.0.0.9"));
}

}  // namespace
}  // namespace ringlb::testing
