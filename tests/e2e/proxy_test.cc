// ringlb as a real process in front of real backends on loopback.
#include <dirent.h>
#include <sched.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "tests/support/backends.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

uint64_t fnv1a(const char* data, size_t len, uint64_t h = 1469598103934665603ULL) {
  for (size_t i = 0; i < len; ++i) {
    h ^= static_cast<uint8_t>(data[i]);
    h *= 1099511628211ULL;
  }
  return h;
}

// Reads `fd` until ringlb closes it, expecting no bytes on the way, and returns how long that
// took. The read gives up after 5 s, so a time near 5 s means nothing closed it.
Clock::duration time_until_closed(int fd) {
  const auto t0 = Clock::now();
  EXPECT_EQ(read_to_eof(fd, 5000), "") << "bytes arrived before the close";
  return Clock::now() - t0;
}

TEST(Proxy, ThirtyTwoStreamsOfFourMiBArriveIntactBothWays) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "2"}))
      << lb.output();
  constexpr int kClients = 32;
  constexpr size_t kBytes = 4 << 20;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  std::vector<std::string> failures(kClients);
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      Fd fd = connect_loopback(lb.port());
      if (!fd) {
        failures[c] = "connect";
        return;
      }
      std::mt19937_64 rng(static_cast<uint64_t>(c) * 7919 + 1);
      std::string data(kBytes, '\0');
      for (size_t i = 0; i < kBytes; i += 8) {
        uint64_t v = rng();
        memcpy(&data[i], &v, std::min<size_t>(8, kBytes - i));
      }
      const uint64_t sent_hash = fnv1a(data.data(), data.size());
      // Write and read at once: the echo comes back while we are still sending.
      std::thread writer([&] {
        size_t off = 0;
        while (off < kBytes) {
          size_t chunk = std::min<size_t>(kBytes - off, 1 + rng() % 70000);
          if (!write_all(fd.get(), data.data() + off, chunk)) return;
          off += chunk;
        }
        shutdown(fd.get(), SHUT_WR);
      });
      std::string back = read_to_eof(fd.get(), 30000);
      writer.join();
      if (back.size() != kBytes) {
        failures[c] = "got " + std::to_string(back.size()) + " bytes";
      } else if (fnv1a(back.data(), back.size()) != sent_hash) {
        failures[c] = "bytes differ";
      } else {
        ok.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int c = 0; c < kClients; ++c) EXPECT_EQ(failures[c], "") << "client " << c;
  EXPECT_EQ(ok.load(), kClients);
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_connections_active") == 0; }));
  EXPECT_EQ(lb.metric("ringlb_connections_accepted_total"), kClients);
  EXPECT_EQ(lb.metric("ringlb_backend_sent_bytes_total"), double(kClients) * kBytes);
  EXPECT_EQ(lb.metric("ringlb_backend_received_bytes_total"), double(kClients) * kBytes);
  EXPECT_EQ(lb.closed_total("client_eof"), kClients);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

TEST(Proxy, HalfClosedClientStillReceivesWholeReply) {
  constexpr size_t kReply = 3 << 20;
  Backend backend(reply_after_eof_handler(kReply));
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", backend.address(), "--workers", "1"}));
  Fd fd = connect_loopback(lb.port());
  ASSERT_TRUE(fd);
  ASSERT_TRUE(write_all(fd.get(), "request", 7));
  ASSERT_EQ(shutdown(fd.get(), SHUT_WR), 0);
  std::string reply = read_to_eof(fd.get(), 10000);
  ASSERT_EQ(reply.size(), kReply);
  for (size_t i = 0; i < kReply; ++i) {
    if (reply[i] != pattern_byte(i)) FAIL() << "byte " << i << " differs";
  }
  EXPECT_TRUE(eventually([&] { return lb.closed_total("client_eof") == 1; }));
}

TEST(Proxy, RefusingBackendFailsOverToNextOne) {
  Backend good(name_handler("good"));
  const uint16_t dead = refused_port();
  RinglbProcess lb;
  // Health checks off: every client must fail over by itself, none is spared by a down mark.
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:" + std::to_string(dead),
                        "--backend", good.address(), "--workers", "1", "--health-interval", "0s"}));
  // Many short connections in a row: slots are closed and reused quickly, so an operation that
  // reached a reused slot (another client's socket) would show up here as a missing reply.
  for (int i = 0; i < 200; ++i) {
    Fd fd = connect_loopback(lb.port());
    ASSERT_TRUE(fd);
    ASSERT_EQ(read_to_eof(fd.get(), 5000), "good") << "connection " << i;
  }
  EXPECT_GT(lb.metric("ringlb_backend_connect_failures_total",
                      {"backend=\"127.0.0.1:" + std::to_string(dead) + "\""}),
            0);
  EXPECT_EQ(good.accepted(), 200);
  EXPECT_EQ(lb.closed_total("reset"), 0);
}

TEST(Proxy, AllBackendsRefusingClosesClientWithinConnectTimeout) {
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend",
                        "127.0.0.1:" + std::to_string(refused_port()), "--backend",
                        "127.0.0.1:" + std::to_string(refused_port()), "--connect-timeout", "1s",
                        "--workers", "1"}));
  for (int i = 0; i < 5; ++i) {
    Fd fd = connect_loopback(lb.port());
    ASSERT_TRUE(fd);
    EXPECT_LT(time_until_closed(fd.get()), 1s);
  }
  // The first clients fail over and give up (connect_failed); once the failures mark both backends
  // down, later clients are closed without trying (no_backend).
  EXPECT_TRUE(eventually([&] {
    return lb.closed_total("connect_failed") + lb.closed_total("no_backend") == 5;
  }));
  EXPECT_GE(lb.closed_total("connect_failed"), 1);
}

TEST(Proxy, UnansweredConnectTimesOutAndClosesClient) {
  // A listener whose accept queue is full drops SYNs: connects to it hang until timed out.
  uint16_t port = 0;
  Fd blackhole = listen_loopback(&port, 0);
  std::vector<Fd> fillers;
  for (int i = 0; i < 4; ++i) {
    Fd f(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    sockaddr_in a = loopback(port);
    connect(f.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a));
    fillers.push_back(std::move(f));
  }
  std::this_thread::sleep_for(200ms);
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:" + std::to_string(port),
                        "--connect-timeout", "300ms", "--connect-attempts", "1", "--workers", "1"}));
  Fd fd = connect_loopback(lb.port());
  ASSERT_TRUE(fd);
  const auto waited = time_until_closed(fd.get());
  EXPECT_GE(waited, 250ms);
  EXPECT_LT(waited, 2s);
  EXPECT_TRUE(eventually([&] { return lb.closed_total("connect_failed") == 1; }));
}

TEST(Proxy, ThousandConnectionsOverTwoWorkersLeaveNothingBehind) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "2",
                        "--max-connections", "4096"}));
  std::vector<Fd> clients;
  for (int i = 0; i < 1000; ++i) {
    clients.push_back(connect_loopback(lb.port()));
    ASSERT_TRUE(clients.back()) << i;
  }
  // Every connection proxies: a byte goes round trip on each.
  for (size_t i = 0; i < clients.size(); ++i) {
    char c = static_cast<char>('A' + i % 26), back = 0;
    ASSERT_TRUE(write_all(clients[i].get(), &c, 1));
    ASSERT_TRUE(read_exact(clients[i].get(), &back, 1)) << i;
    ASSERT_EQ(back, c);
  }
  const double w0 = lb.metric("ringlb_connections_active", {"worker=\"0\""});
  const double w1 = lb.metric("ringlb_connections_active", {"worker=\"1\""});
  EXPECT_EQ(w0 + w1, 1000);
  EXPECT_GT(w0, 300);
  EXPECT_GT(w1, 300);
  EXPECT_EQ(lb.metric("ringlb_open_direct_slots"), 2000);
  clients.clear();
  EXPECT_TRUE(eventually([&] {
    return lb.metric("ringlb_connections_active", {"worker=\"0\""}) == 0 &&
           lb.metric("ringlb_connections_active", {"worker=\"1\""}) == 0;
  }));
  EXPECT_TRUE(eventually([&] {
    return lb.metric("ringlb_open_direct_slots", {"worker=\"0\""}) == 0 &&
           lb.metric("ringlb_open_direct_slots", {"worker=\"1\""}) == 0;
  }));
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

TEST(Proxy, SlowReaderDoesNotGrowMemory) {
  std::atomic<uint64_t> written{0};
  Backend hose(firehose_handler(&written));
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", hose.address(), "--workers", "1"}));
  Fd fd = connect_loopback(lb.port());
  ASSERT_TRUE(fd);
  char c;
  ASSERT_TRUE(read_exact(fd.get(), &c, 1));  // the stream is flowing; now stop reading
  // What ringlb has taken from the backend. The kernel's socket buffers between the backend and
  // ringlb may grow and shrink (autotuning, collapsing queued packets) and let the backend write
  // more in bursts; what ringlb reads is bounded by what the stalled client side can hold.
  auto received = [&] { return lb.metric("ringlb_backend_received_bytes_total"); };
  double last = received();
  int still = 0;
  for (int i = 0; i < 100 && still < 5; ++i) {
    std::this_thread::sleep_for(100ms);
    const double now = received();
    still = now == last ? still + 1 : 0;
    last = now;
  }
  ASSERT_EQ(still, 5) << "ringlb never stopped reading from the backend: " << last << " bytes";
  const long rss_before = rss_kib(lb.pid());
  const double received_before = received();
  std::this_thread::sleep_for(2s);
  const long rss_after = rss_kib(lb.pid());
  const double received_after = received();
  // The client side holds at most its receive buffer plus ringlb's send buffer towards it
  // (tcp_wmem's maximum); ringlb itself at most one 128 KiB buffer (--buffer-size) per direction.
  // A proxy that kept reading would move hundreds of MiB a second over loopback.
  int client_rcvbuf = 0;
  socklen_t len = sizeof(client_rcvbuf);
  ASSERT_EQ(getsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &client_rcvbuf, &len), 0);
  std::ifstream wmem_file("/proc/sys/net/ipv4/tcp_wmem");
  double wmem_min = 0, wmem_default = 0, wmem_max = 0;
  ASSERT_TRUE(wmem_file >> wmem_min >> wmem_default >> wmem_max);
  const double bound = client_rcvbuf + wmem_max + (1 << 20);
  EXPECT_LT(received_after, bound) << "client receive buffer " << client_rcvbuf << ", tcp_wmem max " << wmem_max;
  EXPECT_LT(received_after - received_before, 1 << 20) << "ringlb kept reading from the backend";
  EXPECT_LT(rss_after - rss_before, 1024) << "RSS grew from " << rss_before << " KiB";
  EXPECT_GT(written.load(), received_after) << "the backend kept sending into its socket";
  hose.stop();
}

TEST(Proxy, ListeningSocketIsADirectDescriptor) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "1"}));
  // Find the listening socket's inode in /proc/net/tcp, then look for it among ringlb's fds.
  char port_hex[8];
  snprintf(port_hex, sizeof(port_hex), "%04X", lb.port());
  std::ifstream tcp("/proc/net/tcp");
  std::string line, inode;
  while (std::getline(tcp, line)) {
    std::istringstream f(line);
    std::string sl, local, remote, st, q, tr, rt, uid, to, ino;
    f >> sl >> local >> remote >> st >> q >> tr >> rt >> uid >> to >> ino;
    if (st == "0A" && local.size() > 5 && local.substr(local.size() - 4) == port_hex) inode = ino;
  }
  ASSERT_FALSE(inode.empty()) << "no listening socket on port " << lb.port();
  const std::string dir = "/proc/" + std::to_string(lb.pid()) + "/fd";
  DIR* d = opendir(dir.c_str());
  ASSERT_NE(d, nullptr);
  int sockets = 0;
  while (dirent* e = readdir(d)) {
    char target[256] = {};
    std::string path = dir + "/" + e->d_name;
    if (readlink(path.c_str(), target, sizeof(target) - 1) <= 0) continue;
    EXPECT_NE(std::string(target), "socket:[" + inode + "]");
    sockets += std::string(target).rfind("socket:", 0) == 0;
  }
  closedir(d);
  // Accepting still works, so the listener is alive: it just has no regular fd.
  Fd c = connect_loopback(lb.port());
  ASSERT_TRUE(write_all(c.get(), "x", 1));
  char back;
  EXPECT_TRUE(read_exact(c.get(), &back, 1));
}

TEST(Proxy, IdleConnectionIsClosedAfterIdleTimeout) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "1",
                        "--idle-timeout", "600ms"}));
  Fd fd = connect_loopback(lb.port());
  ASSERT_TRUE(write_all(fd.get(), "x", 1));
  char c;
  ASSERT_TRUE(read_exact(fd.get(), &c, 1));
  const auto waited = time_until_closed(fd.get());
  EXPECT_GE(waited, 500ms);
  EXPECT_LT(waited, 2s);
  EXPECT_TRUE(eventually([&] { return lb.closed_total("idle_timeout") == 1; }));
}

// nginx stream's allow/deny: refused sources are closed before any backend is tried.
TEST(Proxy, AllowAndDenyBySourceAddress) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "1",
                        "--health-interval", "0s", "--allow", "127.0.0.0/24", "--deny",
                        "127.0.0.2"}))
      << lb.output();
  for (const auto& [source, served] : std::vector<std::pair<const char*, bool>>{
           {"127.0.0.1", true}, {"127.0.0.2", false}, {"127.0.1.1", false}, {"127.0.0.3", true}}) {
    Fd c = connect_loopback_from(source, lb.port());
    ASSERT_TRUE(c) << source;
    write_all(c.get(), "hi", 2);
    shutdown(c.get(), SHUT_WR);
    EXPECT_EQ(read_to_eof(c.get(), 5000), served ? "hi" : "") << source;
  }
  EXPECT_TRUE(eventually([&] { return lb.closed_total("denied") == 2; }));
  EXPECT_EQ(echo.accepted(), 2) << "a refused client must not reach a backend";
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

// Everything at once, for a bounded 4 s: PROXY headers whole and in pieces, plain clients on a
// second listener, garbage headers, resets, clients that give up while queued, a backend that
// refuses, backends at their max-connections, a buffer pool small enough to run dry. Every
// stream that completes must come back byte for byte, and afterwards nothing may be left:
// no connection, queue entry, descriptor slot or proxy buffer.
TEST(Proxy, MixedMisbehaviourLeavesNothingBehindAndLosesNoByte) {
  TempDir dir;
  const std::string access_log = dir.path() + "/access.log";
  Backend a(echo_handler()), b(echo_handler());
  const std::string refused = "127.0.0.1:" + std::to_string(refused_port());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0,accept-proxy", "--listen", "127.0.0.1:0",
                        "--backend", a.address() + ",max-connections=4", "--backend",
                        b.address() + ",max-connections=4", "--backend", refused,
                        "--health-interval", "0s", "--workers", "2", "--buffers", "16",
                        "--buffer-size", "4096", "--queue-timeout", "3s", "--idle-timeout", "3s", "--access-log", access_log}))
      << lb.output();
  std::atomic<int> intact{0}, corrupted{0}, other{0};
  const auto deadline = Clock::now() + 4s;
  std::vector<std::thread> clients;
  for (int t = 0; t < 16; ++t) {
    clients.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 1);
      while (Clock::now() < deadline) {
        const int kind = static_cast<int>(rng() % 10);
        const bool proxied = kind < 6 && kind % 2 == 0;
        Fd c = connect_loopback(lb.port(proxied || kind >= 7 ? 0 : 1));
        if (!c) continue;
        set_recv_timeout(c.get(), 8000);
        std::string header = proxied ? "PROXY TCP4 198.51.100." + std::to_string(t) + " 203.0.113.1 " +
                                           std::to_string(1000 + rng() % 60000) + " 443\r\n"
                                     : "";
        if (kind < 6) {  // a whole stream, echoed back intact
          std::string payload(1 + rng() % 60000, '\0');
          for (char& ch : payload) ch = static_cast<char>(rng());
          std::string sent = header + payload;
          std::thread writer([&] {
            size_t at = 0;
            while (at < sent.size()) {  // uneven pieces, so headers and data split anywhere
              const size_t n = std::min(sent.size() - at, size_t{1} + rng() % 9000);
              if (!write_all(c.get(), sent.data() + at, n)) return;
              at += n;
            }
            shutdown(c.get(), SHUT_WR);
          });
          const std::string back = read_to_eof(c.get(), 8000);
          writer.join();
          (back == payload ? intact : corrupted) += 1;
        } else if (kind == 6) {  // a reset halfway
          std::string junk(1 + rng() % 20000, 'r');
          write_all(c.get(), junk.data(), junk.size());
          linger hard{1, 0};
          setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
          ++other;
        } else if (kind == 7) {  // not a PROXY header at all
          write_all(c.get(), "GET / HTTP/1.0\r\n\r\n", 18);
          read_to_eof(c.get(), 8000);
          ++other;
        } else {  // gives up at once, perhaps while queued
          ++other;
        }
      }
    });
  }
  for (std::thread& th : clients) th.join();
  EXPECT_GT(intact.load(), 20);
  EXPECT_EQ(corrupted.load(), 0);
  EXPECT_GT(other.load(), 10);
  for (const char* gauge : {"ringlb_connections_active", "ringlb_queued_connections",
                            "ringlb_open_direct_slots", "ringlb_proxy_buffers_in_use"}) {
    EXPECT_TRUE(eventually([&] { return lb.metric(gauge) == 0; }, 10s))
        << gauge << " = " << lb.metric(gauge);
  }
  EXPECT_GT(lb.closed_total("bad_proxy_header"), 0);
  EXPECT_EQ(lb.closed_total("error"), 0);
  EXPECT_EQ(lb.closed_total("queue_timeout"), 0);
  EXPECT_EQ(lb.closed_total("connect_failed"), 0) << "a refused connect fails over (or queues)";
  // Every connection accepted was closed and logged, once.
  EXPECT_TRUE(eventually([&] {
    return lb.metric("ringlb_access_log_lines_total") == lb.metric("ringlb_connections_accepted_total");
  }));
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

// Envoy's max_downstream_connection_duration: a busy long-lived connection is closed too, so
// its client reconnects (and may land on a backend added since).
TEST(Proxy, MaxConnectionDurationClosesEvenABusyConnection) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "1",
                        "--max-connection-duration", "600ms"}));
  Fd fd = connect_loopback(lb.port());
  set_recv_timeout(fd.get(), 5000);
  const auto t0 = Clock::now();
  int echoed = 0;
  // A byte every 50 ms, each echoed: never idle. Bounded at 5 s.
  while (Clock::now() - t0 < 5s) {
    char c = 'b';
    if (!write_all(fd.get(), &c, 1) || !read_exact(fd.get(), &c, 1)) break;
    ++echoed;
    std::this_thread::sleep_for(50ms);
  }
  const auto lived = Clock::now() - t0;
  EXPECT_GE(lived, 550ms);
  EXPECT_LT(lived, 2s);
  EXPECT_GE(echoed, 5);
  EXPECT_TRUE(eventually([&] { return lb.closed_total("max_duration") == 1; }));
}

// HAProxy's client-fin/server-fin timeouts; Envoy #41086: half-closed sockets must not linger until
// the (long) idle timeout. Quiet half-closed connections go at --fin-timeout; ones still carrying
// bytes the other way are left alone.
TEST(Proxy, HalfClosedConnectionIsClosedAfterFinTimeoutUnlessBytesFlow) {
  // Reads to EOF, then either keeps the connection open in silence, or sends a byte every 200 ms
  // for 1.6 s (longer than the fin timeout) and closes.
  Backend backend([](int fd, const std::atomic<bool>& stopping) {
    char c = 0;
    if (read(fd, &c, 1) != 1) return;
    char rest[64];
    while (read(fd, rest, sizeof(rest)) > 0) {
    }
    if (c == 's') {
      while (!stopping.load()) std::this_thread::sleep_for(20ms);
      return;
    }
    for (int i = 0; i < 8 && !stopping.load(); ++i) {
      std::this_thread::sleep_for(200ms);
      if (!write_all(fd, "t", 1)) return;
    }
  });
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", backend.address(), "--workers", "1",
                        "--fin-timeout", "600ms"}));
  Fd silent = connect_loopback(lb.port());
  Fd talking = connect_loopback(lb.port());
  ASSERT_TRUE(write_all(silent.get(), "s", 1));
  ASSERT_TRUE(write_all(talking.get(), "t", 1));
  ASSERT_EQ(shutdown(silent.get(), SHUT_WR), 0);
  ASSERT_EQ(shutdown(talking.get(), SHUT_WR), 0);
  std::string trickle;
  std::thread reader([&] { trickle = read_to_eof(talking.get(), 5000); });
  const auto waited = time_until_closed(silent.get());
  EXPECT_GE(waited, 500ms);
  EXPECT_LT(waited, 2s);  // the idle timeout is 5 minutes
  reader.join();
  EXPECT_EQ(trickle, "tttttttt");  // 1.6 s of bytes with gaps under the fin timeout: all arrive
  EXPECT_TRUE(eventually([&] {
    return lb.closed_total("fin_timeout") == 1 &&
           lb.closed_total("backend_eof") == 0 &&
           lb.closed_total("client_eof") == 1 &&
           lb.metric("ringlb_connections_active") == 0;
  }));
}

}  // namespace
}  // namespace ringlb::testing
