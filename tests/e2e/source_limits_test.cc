// Per-source limits of a listener, with clients bound to many addresses of 127.0.0.0/8: the
// per-source connection cap holds exactly across workers while other sources connect, the
// new-connection rate refuses past the burst and recovers, the table evicts its least recently
// seen idle source at its size (counted), and behind a trusted proxy the PROXY header's source
// is the key.
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

// A file with one listener in front of `backend`, with `listener_keys` in its table.
std::string write_config(const TempDir& dir, const std::string& backend, const std::string& listener_keys) {
  const std::string path = dir.path() + "/sources.toml";
  std::ofstream(path) << "workers = 2\nhealth-interval = \"0s\"\ndrain-timeout = \"500ms\"\n"
                      << "\n[cluster.app]\nbackends = [\"" << backend << "\"]\n\n"
                      << "[[listener]]\nname = \"edge\"\naddress = \"127.0.0.1:0\"\ncluster = \"app\"\n"
                      << listener_keys;
  return path;
}

// A client from `source` that got through to the echo backend (an empty Fd when it was closed).
Fd echoing_client(uint16_t port, const std::string& source, const std::string& first = "") {
  Fd fd = connect_loopback_from(source.c_str(), port);
  if (!fd) return fd;
  set_recv_timeout(fd.get(), 5000);
  const std::string out = first + "ping";
  char back[4];
  if (!write_all(fd.get(), out.data(), out.size()) || !read_exact(fd.get(), back, 4)) return Fd();
  return fd;
}

std::string source(int i) { return "127.0.0." + std::to_string(i); }

double live(const RinglbProcess& lb) { return lb.metric("ringlb_connections_active"); }

TEST(SourceLimits, PerSourceCapHoldsExactlyAcrossWorkersWhileOthersConnect) {
  Backend echo(echo_handler());
  TempDir dir;
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_config(dir, echo.address(), "max-connections-per-source = 3\n")}))
      << lb.output();
  std::vector<Fd> held;
  int served = 0;
  for (int i = 0; i < 10; ++i) {
    Fd c = echoing_client(lb.port(), source(2));
    if (c) ++served, held.push_back(std::move(c));
  }
  EXPECT_EQ(served, 3) << "one source's cap, with its clients spread over two workers";
  EXPECT_TRUE(eventually([&] { return lb.closed_total("source_connections") == 7; }));
  // Both workers hold some of them: the cap held across workers, not within one.
  EXPECT_GT(lb.metric("ringlb_connections_active", {"worker=\"0\""}), 0) << lb.scrape();
  EXPECT_GT(lb.metric("ringlb_connections_active", {"worker=\"1\""}), 0) << lb.scrape();
  for (int s = 3; s <= 40; ++s) {
    for (int i = 0; i < 3; ++i) {
      Fd c = echoing_client(lb.port(), source(s));
      EXPECT_TRUE(c) << "source " << source(s) << " client " << i;
      held.push_back(std::move(c));
    }
  }
  EXPECT_FALSE(echoing_client(lb.port(), source(40)));
  // One of 127.0.0.2's closes: exactly one more fits.
  held.erase(held.begin());
  EXPECT_TRUE(eventually([&] { return live(lb) == 3 * 39 - 1; })) << lb.scrape();
  Fd again = echoing_client(lb.port(), source(2));
  EXPECT_TRUE(again);
  EXPECT_FALSE(echoing_client(lb.port(), source(2)));
  EXPECT_TRUE(eventually([&] { return lb.closed_total("source_connections") == 9; }));
  EXPECT_EQ(lb.closed_total("source_rate"), 0);
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(SourceLimits, RateRefusesPastTheBurstAndRecoversFromFlags) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "2",
                        "--health-interval", "0s", "--connection-rate-per-source", "2/s",
                        "--connection-burst-per-source", "3"}))
      << lb.output();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(echoing_client(lb.port(), source(2))) << i;  // closed at once: the rate counts new ones
  EXPECT_FALSE(echoing_client(lb.port(), source(2))) << "past the burst";
  EXPECT_FALSE(echoing_client(lb.port(), source(2)));
  EXPECT_TRUE(echoing_client(lb.port(), source(3))) << "another source has its own bucket";
  EXPECT_TRUE(eventually([&] { return lb.closed_total("source_rate") == 2; }));
  // 2/s: a token every 500 ms. 700 ms later one is there, not two.
  std::this_thread::sleep_for(700ms);
  EXPECT_TRUE(echoing_client(lb.port(), source(2))) << "recovered";
  EXPECT_FALSE(echoing_client(lb.port(), source(2)));
  EXPECT_TRUE(eventually([&] { return lb.closed_total("source_rate") == 3; }));
  EXPECT_EQ(lb.closed_total("source_connections"), 0);
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(SourceLimits, TableEvictsTheLeastRecentlySeenIdleSourceAtItsSize) {
  Backend echo(echo_handler());
  TempDir dir;
  RinglbProcess lb;
  // One connection a minute per source: a source the table still knows is refused, a forgotten
  // one starts with a full bucket, so what the table holds shows from outside.
  ASSERT_TRUE(lb.start({"--config", write_config(dir, echo.address(),
                                                 "connection-rate-per-source = \"1/m\"\n"
                                                 "connection-burst-per-source = 1\nsource-table-size = 4\n")}))
      << lb.output();
  const std::vector<std::string> edge{"listener=\"edge\""};
  auto idle = [&] { return eventually([&] { return live(lb) == 0; }); };
  for (int s = 2; s <= 5; ++s) EXPECT_TRUE(echoing_client(lb.port(), source(s))) << s;
  ASSERT_TRUE(idle());
  EXPECT_FALSE(echoing_client(lb.port(), source(2))) << "known: its bucket is empty";
  EXPECT_EQ(lb.metric("ringlb_source_table_entries", edge), 4);
  EXPECT_EQ(lb.metric("ringlb_source_table_evictions_total", edge), 0);
  // A fifth source evicts the least recently seen: 127.0.0.3 (127.0.0.2 was just seen).
  EXPECT_TRUE(echoing_client(lb.port(), source(6)));
  ASSERT_TRUE(idle());
  EXPECT_EQ(lb.metric("ringlb_source_table_entries", edge), 4);
  EXPECT_EQ(lb.metric("ringlb_source_table_evictions_total", edge), 1);
  EXPECT_FALSE(echoing_client(lb.port(), source(2))) << "still known";
  EXPECT_TRUE(echoing_client(lb.port(), source(3))) << "forgotten: a full bucket again";
  ASSERT_TRUE(idle());
  EXPECT_EQ(lb.metric("ringlb_source_table_evictions_total", edge), 2);
  EXPECT_TRUE(eventually([&] { return lb.closed_total("source_rate") == 2; }));
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(SourceLimits, ANewSourceIsRefusedWhenEverySourceInTheTableIsLive) {
  Backend echo(echo_handler());
  TempDir dir;
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_config(dir, echo.address(),
                                                 "max-connections-per-source = 5\nsource-table-size = 3\n")}))
      << lb.output();
  std::vector<Fd> held;
  for (int s = 2; s <= 4; ++s) {
    held.push_back(echoing_client(lb.port(), source(s)));
    EXPECT_TRUE(held.back()) << s;
  }
  EXPECT_FALSE(echoing_client(lb.port(), source(5))) << "no idle source to forget: the counts must stay exact";
  EXPECT_TRUE(echoing_client(lb.port(), source(4))) << "a known source still connects";
  EXPECT_TRUE(eventually([&] { return lb.closed_total("source_table_full") == 1; }));
  held.pop_back();
  EXPECT_TRUE(eventually([&] { return live(lb) == 2; }));
  EXPECT_TRUE(echoing_client(lb.port(), source(5))) << "127.0.0.4 went idle and was forgotten";
  EXPECT_EQ(lb.metric("ringlb_source_table_evictions_total", {"listener=\"edge\""}), 1);
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(SourceLimits, TheTrustedProxyHeadersSourceIsTheKey) {
  Backend echo(echo_handler());
  TempDir dir;
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_config(dir, echo.address(),
                                                 "accept-proxy = true\ntrusted-proxies = [\"127.0.0.5/32\"]\n"
                                                 "max-connections-per-source = 1\n")}))
      << lb.output();
  const std::string port = std::to_string(lb.port());
  auto header = [&](const std::string& client) {
    return "PROXY TCP4 " + client + " 127.0.0.1 4711 " + port + "\r\n";
  };
  // Every client comes through the one proxy at 127.0.0.5; each header's source has its own cap.
  Fd a = echoing_client(lb.port(), source(5), header("203.0.113.7"));
  EXPECT_TRUE(a);
  EXPECT_FALSE(echoing_client(lb.port(), source(5), header("203.0.113.7"))) << "the header's source is at its cap";
  Fd b = echoing_client(lb.port(), source(5), header("203.0.113.8"));
  EXPECT_TRUE(b) << "another client behind the same proxy";
  Fd c = echoing_client(lb.port(), source(5), "PROXY UNKNOWN\r\n");
  EXPECT_TRUE(c) << "no addresses in the header: the proxy's own";
  EXPECT_FALSE(echoing_client(lb.port(), source(5), "PROXY UNKNOWN\r\n"));
  EXPECT_TRUE(eventually([&] { return lb.closed_total("source_connections") == 2; }));
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(SourceLimits, AReloadChangesTheCapAndKeepsTheCounts) {
  Backend echo(echo_handler());
  TempDir dir;
  RinglbProcess lb;
  const std::string path = write_config(dir, echo.address(), "max-connections-per-source = 1\n");
  ASSERT_TRUE(lb.start({"--config", path})) << lb.output();
  Fd a = echoing_client(lb.port(), source(2));
  EXPECT_TRUE(a);
  EXPECT_FALSE(echoing_client(lb.port(), source(2)));
  write_config(dir, echo.address(), "max-connections-per-source = 2\n");
  kill(lb.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return lb.output().find("reloaded") != std::string::npos; })) << lb.output();
  Fd b = echoing_client(lb.port(), source(2));
  EXPECT_TRUE(b) << "the new cap";
  EXPECT_FALSE(echoing_client(lb.port(), source(2))) << "the connection from before the reload still counts";
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

// One source opens every connection an accept-proxy listener has and sends nothing. Bounded per
// source while they are in their handshake, it cannot shut the others out; unbounded (as before
// the bound existed), it does, until the header timeout.
TEST(SourceLimits, ASilentSourceCannotHoldEveryConnectionOfAListenerBeforeItsHeader) {
  Backend echo(echo_handler());
  for (const bool bounded : {false, true}) {
    SCOPED_TRACE(bounded ? "max-handshakes-per-source = 5" : "max-handshakes-per-source = 0");
    TempDir dir;
    RinglbProcess lb;
    ASSERT_TRUE(lb.start({"--config", write_config(dir, echo.address(),
                                                   "accept-proxy = true\nmax-connections = 20\n"
                                                   "proxy-header-timeout = \"30s\"\n"
                                                   "max-handshakes-per-source = " + std::string(bounded ? "5" : "0") + "\n")}))
        << lb.output();
    std::vector<Fd> silent;
    for (int i = 0; i < 20; ++i) silent.push_back(connect_loopback_from(source(2).c_str(), lb.port()));
    const double held = bounded ? 5 : 20;
    EXPECT_TRUE(eventually([&] { return live(lb) == held; })) << lb.scrape();
    if (bounded) {
      EXPECT_TRUE(eventually([&] { return lb.closed_total("source_handshakes") == 15; }));
    }
    const std::string header = "PROXY TCP4 203.0.113.9 127.0.0.1 4711 " + std::to_string(lb.port()) + "\r\n";
    Fd other = echoing_client(lb.port(), source(3), header);
    EXPECT_EQ(static_cast<bool>(other), bounded) << "another source gets through only with the bound";
    if (!bounded) {
      EXPECT_TRUE(eventually([&] { return lb.closed_total("max_connections") == 1; }));
    }
    EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
  }
}

}  // namespace
}  // namespace ringlb::testing
