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

// Every thread of `pid`: {tid, name (comm)}.
std::vector<std::pair<std::string, std::string>> threads_of(pid_t pid) {
  std::vector<std::pair<std::string, std::string>> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream comm(dir + "/" + e->d_name + "/comm");
    std::string name;
    std::getline(comm, name);
    out.emplace_back(e->d_name, name);
  }
  closedir(d);
  return out;
}

// The threads of a ringlb process, by name (comm) -> Cpus_allowed_list; tid in `tids`.
std::map<std::string, std::string> thread_cpus(pid_t pid, std::map<std::string, std::string>* tids) {
  std::map<std::string, std::string> out;
  for (auto [tid, name] : threads_of(pid)) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/task/" + tid + "/status");
    std::string line, cpus;
    while (std::getline(status, line)) {
      if (line.rfind("Cpus_allowed_list:", 0) == 0) cpus = line.substr(line.find_first_not_of(" \t", 18));
    }
    if (std::to_string(pid) == tid) name = "acceptor";  // the main thread
    out[name] = cpus;
    if (tids) (*tids)[name] = tid;
  }
  return out;
}

// The scheduling policy of a thread (field 41 of its stat): 0 SCHED_OTHER, 3 SCHED_BATCH.
int thread_policy(pid_t pid, const std::string& tid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + tid + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 41 && fields >> field; ++i) {
  }
  return std::stoi(field);
}

// The tids of every thread of `pid` named `name` (io-wq threads of one worker share a name).
std::vector<std::string> tids_named(pid_t pid, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& [tid, comm] : threads_of(pid)) {
    if (comm == name) out.push_back(tid);
  }
  return out;
}

TEST(Proxy, AcceptorAndIoWqThreadsRunAsSchedBatchUnlessToldOtherwise) {
  Backend echo(echo_handler());
  RinglbProcess batch, normal;
  ASSERT_TRUE(batch.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "1"}));
  ASSERT_TRUE(normal.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "1",
                            "--acceptor-scheduling", "normal", "--iowq-scheduling", "normal"}));
  // A half-close each: the worker forwards the FIN with a SHUTDOWN, which the kernel runs on an
  // io-wq thread (created on demand unless ringlb made it at start-up). Proxying works either way.
  for (RinglbProcess* lb : {&batch, &normal}) {
    Fd fd = connect_loopback(lb->port());
    ASSERT_TRUE(write_all(fd.get(), "b", 1));
    ASSERT_EQ(shutdown(fd.get(), SHUT_WR), 0);
    EXPECT_EQ(read_to_eof(fd.get(), 5000), "b");
  }
  std::map<std::string, std::string> tids;
  thread_cpus(batch.pid(), &tids);
  EXPECT_EQ(thread_policy(batch.pid(), tids.at("acceptor")), SCHED_BATCH);
  EXPECT_EQ(thread_policy(batch.pid(), tids.at("ringlb-w0")), SCHED_OTHER);  // workers: normal
  const std::vector<std::string> batch_iowq = tids_named(batch.pid(), "iou-wrk-" + tids.at("ringlb-w0"));
  ASSERT_EQ(batch_iowq.size(), 1u) << "one io-wq thread runs the worker's SHUTDOWNs";
  EXPECT_EQ(thread_policy(batch.pid(), batch_iowq[0]), SCHED_BATCH);
  tids.clear();
  thread_cpus(normal.pid(), &tids);
  EXPECT_EQ(thread_policy(normal.pid(), tids.at("acceptor")), SCHED_OTHER);
  const std::vector<std::string> normal_iowq = tids_named(normal.pid(), "iou-wrk-" + tids.at("ringlb-w0"));
  ASSERT_EQ(normal_iowq.size(), 1u);
  EXPECT_EQ(thread_policy(normal.pid(), normal_iowq[0]), SCHED_OTHER);
}

TEST(Proxy, CpuAffinityPinsWorkersTheirIoWqThreadsAndTheAcceptor) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
  }
  Backend echo(echo_handler());
  RinglbProcess plain, pinned;
  ASSERT_TRUE(plain.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "2"}));
  ASSERT_TRUE(pinned.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "2",
                            "--cpu-affinity", "auto"}));
  // A half-close makes the first worker run a SHUTDOWN, which the kernel gives to an io-wq thread.
  Fd fd = connect_loopback(pinned.port());
  ASSERT_TRUE(write_all(fd.get(), "x", 1));
  ASSERT_EQ(shutdown(fd.get(), SHUT_WR), 0);
  EXPECT_EQ(read_to_eof(fd.get(), 5000), "x");

  std::map<std::string, std::string> tids;
  const auto got = thread_cpus(pinned.pid(), &tids);
  ASSERT_TRUE(got.count("ringlb-w0") && got.count("ringlb-w1")) << "worker threads are named";
  EXPECT_EQ(got.at("ringlb-w0"), std::to_string(cpus[0]));
  EXPECT_EQ(got.at("ringlb-w1"), std::to_string(cpus[1 % cpus.size()]));
  EXPECT_EQ(got.at("acceptor"), std::to_string(cpus[0]));
  const std::string iowq = "iou-wrk-" + tids.at("ringlb-w0");
  ASSERT_TRUE(got.count(iowq)) << "no io-wq thread for worker 0";
  EXPECT_EQ(got.at(iowq), std::to_string(cpus[0]));
  if (got.count("ringlb-health")) {
    EXPECT_NE(got.at("ringlb-health"), std::to_string(cpus[0]));  // only the acceptor is pinned
  }

  // Without the flag nothing is pinned: every thread may run on every CPU the test may use.
  const auto free_threads = thread_cpus(plain.pid(), nullptr);
  ASSERT_TRUE(free_threads.count("ringlb-w0"));
  EXPECT_EQ(free_threads.at("ringlb-w0"), free_threads.at("acceptor"));
  if (cpus.size() > 1) {
    EXPECT_NE(free_threads.at("ringlb-w0"), std::to_string(cpus[0]));
  }
}

TEST(Proxy, MaxConnectionsClosesExtraAndResumes) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "2",
                        "--max-connections", "2"}));
  auto roundtrip = [](Fd& fd) {
    char c = 'q', back = 0;
    return write_all(fd.get(), &c, 1) && read_exact(fd.get(), &back, 1) && back == c;
  };
  Fd a = connect_loopback(lb.port()), b = connect_loopback(lb.port());
  ASSERT_TRUE(roundtrip(a));
  ASSERT_TRUE(roundtrip(b));
  Fd extra = connect_loopback(lb.port());
  ASSERT_TRUE(extra);
  EXPECT_EQ(read_to_eof(extra.get(), 3000), "") << "a third connection must be closed at once";
  EXPECT_EQ(lb.closed_total("max_connections"), 1);
  a.reset();
  ASSERT_TRUE(eventually([&] { return lb.metric("ringlb_connections_active") == 1; }));
  Fd again = connect_loopback(lb.port());
  EXPECT_TRUE(roundtrip(again)) << "accepting must resume when the count falls";
}

TEST(Proxy, SigtermDrainsLiveConnectionsThenExits) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "2",
                        "--drain-timeout", "5s"}));
  Fd live = connect_loopback(lb.port());
  char c = 'a', back = 0;
  ASSERT_TRUE(write_all(live.get(), &c, 1) && read_exact(live.get(), &back, 1));
  kill(lb.pid(), SIGTERM);
  std::this_thread::sleep_for(300ms);
  // New clients are refused; the live one keeps working during the drain.
  Fd late = connect_loopback(lb.port());
  EXPECT_FALSE(late) << "listener still accepting after SIGTERM";
  c = 'b';
  ASSERT_TRUE(write_all(live.get(), &c, 1));
  ASSERT_TRUE(read_exact(live.get(), &back, 1));
  EXPECT_EQ(back, 'b');
  shutdown(live.get(), SHUT_WR);
  EXPECT_EQ(read_to_eof(live.get(), 3000), "");
  const auto t0 = Clock::now();
  EXPECT_EQ(lb.stop(0, 5s), 0);  // signal 0: just wait for the exit
  // Within well under a second: the deadline is 5 s, and stopping the metrics server must not
  // add its own 2 s poll quantum either.
  EXPECT_LT(Clock::now() - t0, 800ms) << "exit should follow the last connection, not the deadline";
}

TEST(Proxy, DrainDeadlineClosesWhatRemains) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "1",
                        "--drain-timeout", "700ms"}));
  Fd idle = connect_loopback(lb.port());
  char c = 'a', back = 0;
  ASSERT_TRUE(write_all(idle.get(), &c, 1) && read_exact(idle.get(), &back, 1));
  const auto t0 = Clock::now();
  EXPECT_EQ(lb.stop(SIGTERM, 5s), 0);
  const auto took = Clock::now() - t0;
  EXPECT_GE(took, 600ms);
  EXPECT_LT(took, 3s);
  EXPECT_EQ(read_to_eof(idle.get(), 2000), "");
  EXPECT_NE(lb.output().find("draining"), std::string::npos);
}

// Closes with RST instead of FIN.
void reset_close(Fd& fd) {
  linger l{1, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  fd.reset();
}

TEST(Proxy, ResettingPeersCloseOnlyTheirOwnConnection) {
  // A backend that resets every connection after echoing its first bytes.
  Backend rude([](int fd, const std::atomic<bool>&) {
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) write_all(fd, buf, static_cast<size_t>(n));
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  });
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--backend",
                        echo.address(), "--workers", "2", "--health-interval", "0s"}));
  // A healthy long-lived connection that must survive everything below.
  Fd healthy = connect_loopback(lb.port(0));
  ASSERT_TRUE(write_all(healthy.get(), "ok", 2));
  char back[2];
  ASSERT_TRUE(read_exact(healthy.get(), back, 2));
  // Clients that reset mid-stream, some with data still in flight towards them.
  for (int i = 0; i < 20; ++i) {
    Fd c = connect_loopback(lb.port(0));
    ASSERT_TRUE(c);
    const std::string burst(100000, 'r');
    write_all(c.get(), burst.data(), burst.size());
    reset_close(c);
  }
  RinglbProcess lb2;
  ASSERT_TRUE(lb2.start({"--listen", "127.0.0.1:0", "--backend", rude.address(), "--workers", "1",
                         "--health-interval", "0s"}));
  for (int i = 0; i < 10; ++i) {
    Fd c = connect_loopback(lb2.port());
    ASSERT_TRUE(write_all(c.get(), "hello", 5));
    char got[5];
    EXPECT_TRUE(read_exact(c.get(), got, 5));
    EXPECT_LT(time_until_closed(c.get()), 2s) << "the backend's reset must close the client";
  }
  // The healthy connection still works; every reset connection is gone and counted.
  ASSERT_TRUE(write_all(healthy.get(), "ok", 2));
  ASSERT_TRUE(read_exact(healthy.get(), back, 2));
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_connections_active") == 1; }));
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_open_direct_slots") == 2; }));
  EXPECT_TRUE(eventually([&] {
    return lb.closed_total("reset") + lb.closed_total("client_eof") == 20;
  }));
  EXPECT_TRUE(eventually([&] { return lb2.metric("ringlb_connections_active") == 0; }));
  EXPECT_TRUE(eventually([&] { return lb2.metric("ringlb_open_direct_slots") == 0; }));
  EXPECT_GE(lb2.closed_total("reset"), 1);
  EXPECT_EQ(lb.metric("ringlb_buffer_waits_total"), 0);
  healthy.reset();  // otherwise the stop below would wait out the drain for it
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_connections_active") == 0; }));
  EXPECT_EQ(lb.stop(SIGTERM), 0);
  EXPECT_EQ(lb2.stop(SIGTERM), 0);
}

// HAProxy's `server s1 /run/app.sock`, nginx's `proxy_pass unix:...`: a local service on a Unix
// socket, health-checked and proxied like any other backend.
TEST(Proxy, UnixSocketBackend) {
  TempDir dir;
  const std::string path = dir.path() + "/echo.sock";
  Fd listener(::socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener.get(), 64), 0);
  std::atomic<bool> stop{false};
  std::thread server([&] {
    // Echoes each connection to EOF, one at a time; health checks connect and close.
    while (!stop.load()) {
      if (!readable_within(listener.get(), 50)) continue;
      Fd c(accept(listener.get(), nullptr, nullptr));
      char buf[4096];
      ssize_t n;
      while ((n = read(c.get(), buf, sizeof(buf))) > 0) write_all(c.get(), buf, static_cast<size_t>(n));
    }
  });
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", "unix:" + path, "--workers", "1",
                        "--health-interval", "100ms"}))
      << lb.output();
  const std::string data(100000, 'u');
  Fd c = connect_loopback(lb.port());
  std::thread writer([&] {
    write_all(c.get(), data.data(), data.size());
    shutdown(c.get(), SHUT_WR);
  });
  EXPECT_EQ(read_to_eof(c.get(), 5000), data);
  writer.join();
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_health_checks_total") >= 3; }));
  EXPECT_EQ(lb.metric("ringlb_health_check_failures_total"), 0);
  EXPECT_EQ(lb.metric("ringlb_backend_up", {"backend=\"unix:" + path + "\""}), 1);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
  stop = true;
  server.join();
}

TEST(Proxy, IPv6ListenerAndBackend) {
  // An IPv6 echo backend on [::1].
  Fd l6(::socket(AF_INET6, SOCK_STREAM, 0));
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  ASSERT_EQ(bind(l6.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(l6.get(), 16), 0);
  const uint16_t port6 = local_port(l6.get());
  std::thread server([&] {
    Fd c(accept(l6.get(), nullptr, nullptr));
    char buf[64];
    ssize_t n = recv(c.get(), buf, sizeof(buf), 0);
    if (n > 0) write_all(c.get(), buf, static_cast<size_t>(n));
  });
  RinglbProcess lb;
  // The server above takes one connection: no health check may use it up.
  ASSERT_TRUE(lb.start({"--listen", "[::1]:0", "--backend", "[::1]:" + std::to_string(port6),
                        "--workers", "1", "--health-interval", "0s"}))
      << lb.output();
  Fd c(::socket(AF_INET6, SOCK_STREAM, 0));
  sockaddr_in6 to = a;
  to.sin6_port = htons(lb.port());
  ASSERT_EQ(connect(c.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);
  ASSERT_TRUE(write_all(c.get(), "six", 3));
  set_recv_timeout(c.get(), 5000);
  char buf[3];
  ASSERT_TRUE(read_exact(c.get(), buf, 3));
  EXPECT_EQ(std::string(buf, 3), "six");
  server.join();
}

// HAProxy's send-proxy / send-proxy-v2: a backend behind ringlb learns the client's address.
TEST(Proxy, SendProxyPutsTheClientAddressBeforeItsFirstByte) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address() + ",send-proxy",
                        "--workers", "1"}))
      << lb.output();
  for (const char* source : {"127.0.0.1", "127.0.0.2"}) {
    Fd c = connect_loopback_from(source, lb.port());
    ASSERT_TRUE(c);
    // Written at once, while ringlb may still be connecting to the backend: these bytes must not
    // overtake the header.
    ASSERT_TRUE(write_all(c.get(), "hello", 5));
    shutdown(c.get(), SHUT_WR);
    // The echo backend returns everything it received, header included, then EOF.
    EXPECT_EQ(read_to_eof(c.get(), 5000), "PROXY TCP4 " + std::string(source) + " 127.0.0.1 " +
                                              std::to_string(local_port(c.get())) + " " +
                                              std::to_string(lb.port()) + "\r\nhello");
  }
  EXPECT_EQ(lb.closed_total("client_eof"), 2);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

TEST(Proxy, SendProxyV2OverIPv6GoesOnlyToTheBackendsConfiguredForIt) {
  Backend with_header(echo_handler()), without(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "[::1]:0", "--backend", with_header.address() + ",send-proxy-v2",
                        "--backend", without.address(), "--workers", "1"}))
      << lb.output();
  std::vector<std::string> seen;
  for (int i = 0; i < 2; ++i) {
    Fd c(::socket(AF_INET6, SOCK_STREAM, 0));
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    to.sin6_addr = in6addr_loopback;
    to.sin6_port = htons(lb.port());
    ASSERT_EQ(connect(c.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);
    sockaddr_in6 me{};
    socklen_t len = sizeof(me);
    getsockname(c.get(), reinterpret_cast<sockaddr*>(&me), &len);
    // Signature, v2 PROXY, TCP over IPv6, 36 bytes: source ::1 and port, destination ::1 and
    // ringlb's port.
    std::string header("\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24", 16);
    header.append(reinterpret_cast<const char*>(&in6addr_loopback), 16);
    header.append(reinterpret_cast<const char*>(&in6addr_loopback), 16);
    header.append(reinterpret_cast<const char*>(&me.sin6_port), 2);
    header.append(reinterpret_cast<const char*>(&to.sin6_port), 2);
    ASSERT_TRUE(write_all(c.get(), "hello", 5));
    shutdown(c.get(), SHUT_WR);
    const std::string got = read_to_eof(c.get(), 5000);
    seen.push_back(got == header + "hello" ? "header" : got == "hello" ? "plain" : "wrong");
  }
  // Round robin sends one client to each backend, in an order that depends on the worker's start.
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"header", "plain"}));
  EXPECT_GE(with_header.accepted(), 1);
  EXPECT_GE(without.accepted(), 1);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

// A send-proxy backend expects a header on every connection, health checks included (HAProxy
// sends one with its checks by default): the LOCAL form, which names no client.
TEST(Proxy, HealthChecksOfSendProxyBackendsSendALocalHeader) {
  std::mutex mu;
  std::vector<std::string> received;  // what each connection sent before closing
  const auto record = [&](int fd, const std::atomic<bool>&) {
    set_recv_timeout(fd, 5000);
    const std::string got = read_to_eof(fd, 5000);
    std::lock_guard<std::mutex> lock(mu);
    received.push_back(got);
  };
  Backend v1(record), v2(record), plain(record);
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", v1.address() + ",send-proxy",
                        "--backend", v2.address() + ",send-proxy-v2", "--backend", plain.address(),
                        "--workers", "1", "--health-interval", "100ms"}))
      << lb.output();
  ASSERT_TRUE(eventually([&] {
    std::lock_guard<std::mutex> lock(mu);
    return received.size() >= 9;
  }));
  EXPECT_EQ(lb.stop(SIGTERM), 0);
  const std::string v2_local = std::string("\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00", 16);
  std::lock_guard<std::mutex> lock(mu);
  std::map<std::string, int> kinds;
  for (const std::string& r : received) {
    ++kinds[r == "PROXY UNKNOWN\r\n" ? "v1" : r == v2_local ? "v2" : r.empty() ? "plain" : "other: " + r];
  }
  EXPECT_GE(kinds["v1"], 3);
  EXPECT_GE(kinds["v2"], 3);
  EXPECT_GE(kinds["plain"], 3);
  EXPECT_EQ(kinds.size(), 3u);
  EXPECT_GE(v1.accepted(), 3);
}

// The headers as a real PROXY protocol reader sees them: nginx (a Debian package, installed by
// tools/setup.sh) accepts both versions on a `proxy_protocol` listener and answers each request
// with the addresses it read from the header.
TEST(Proxy, SendProxyHeadersOfBothVersionsAreReadByNginx) {
  TempDir tmp;
  const std::string& dir = tmp.path();
  ASSERT_FALSE(dir.empty());
  uint16_t v1_port = 0, v2_port = 0;
  {
    // Free ports for nginx: bound and closed just before it binds them.
    Fd a = listen_loopback(&v1_port), b = listen_loopback(&v2_port);
  }
  const std::string conf = dir + "/nginx.conf";
  {
    std::ofstream f(conf);
    f << "daemon off; master_process off; worker_processes 1;\n"
      << "pid " << dir << "/nginx.pid; error_log " << dir << "/error.log;\n"
      << "events { worker_connections 64; }\n"
      << "http { access_log off;\n"
      << "  server { listen 127.0.0.1:" << v1_port << " proxy_protocol; listen 127.0.0.1:" << v2_port
      << " proxy_protocol;\n"
      << "    location / { return 200 \"$server_port $proxy_protocol_addr $proxy_protocol_port "
         "$proxy_protocol_server_addr $proxy_protocol_server_port\"; } } }\n";
  }
  ChildProcess nginx({"nginx", "-c", conf, "-p", dir});
  ASSERT_TRUE(nginx.started());
  ASSERT_TRUE(eventually([&] { return static_cast<bool>(connect_loopback(v2_port)); }))
      << "nginx did not start; see " << dir << "/error.log";

  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend",
                        "127.0.0.1:" + std::to_string(v1_port) + ",send-proxy", "--backend",
                        "127.0.0.1:" + std::to_string(v2_port) + ",send-proxy-v2", "--workers", "1",
                        "--health-interval", "0s"}))
      << lb.output();
  std::vector<std::string> answers;
  for (const char* source : {"127.0.0.2", "127.0.0.3"}) {
    Fd c = connect_loopback_from(source, lb.port());
    ASSERT_TRUE(c);
    ASSERT_TRUE(write_all(c.get(), "GET / HTTP/1.0\r\n\r\n", 18));
    const std::string reply = read_to_eof(c.get(), 5000);
    const size_t body = reply.find("\r\n\r\n");
    ASSERT_NE(body, std::string::npos) << reply;
    const std::string client = std::string(source) + " " + std::to_string(local_port(c.get())) +
                               " 127.0.0.1 " + std::to_string(lb.port());
    // Which backend answered comes first; round robin's order depends on the worker's start.
    const std::string answer = reply.substr(body + 4);
    EXPECT_TRUE(answer == std::to_string(v1_port) + " " + client ||
                answer == std::to_string(v2_port) + " " + client)
        << answer << " (client " << client << ")";
    answers.push_back(answer.substr(0, answer.find(' ')));
  }
  std::sort(answers.begin(), answers.end());
  EXPECT_NE(answers[0], answers[1]) << "both versions must have been sent and read";
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

// accept-proxy: ringlb behind another proxy or load balancer. The echo backend behind a
// send-proxy server shows what ringlb understood: the header it received is stripped, and the
// addresses it named are passed on.
std::vector<std::string> accept_proxy_in_front_of(const Backend& echo) {
  return {"--listen", "127.0.0.1:0,accept-proxy", "--backend", echo.address() + ",send-proxy",
          "--workers", "1", "--health-interval", "0s"};
}

TEST(Proxy, AcceptProxyTakesTheClientAddressFromTheHeaderEvenInPieces) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start(accept_proxy_in_front_of(echo)))
      << lb.output();
  const std::string header = "PROXY TCP4 203.0.113.9 198.51.100.1 4444 443\r\n";
  for (const bool in_pieces : {false, true}) {
    Fd c = connect_loopback(lb.port());
    ASSERT_TRUE(c);
    const std::string sent = header + "hello";
    if (in_pieces) {
      // Separate segments: the header arrives over several recvs, the data behind its end.
      int one = 1;
      setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      for (const std::string& piece : {sent.substr(0, 3), sent.substr(3, 20), sent.substr(23)}) {
        ASSERT_TRUE(write_all(c.get(), piece.data(), piece.size()));
        std::this_thread::sleep_for(50ms);
      }
    } else {
      ASSERT_TRUE(write_all(c.get(), sent.data(), sent.size()));
    }
    shutdown(c.get(), SHUT_WR);
    EXPECT_EQ(read_to_eof(c.get(), 5000), header + "hello") << (in_pieces ? "in pieces" : "whole");
  }
  EXPECT_EQ(lb.closed_total("client_eof"), 2);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

TEST(Proxy, AcceptProxyLocalKeepsTheConnectionsOwnAddressAndBadHeadersAreClosed) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start(accept_proxy_in_front_of(echo)))
      << lb.output();
  {
    // v2 LOCAL (a health check of the proxy in front): the socket's own addresses stand.
    Fd c = connect_loopback_from("127.0.0.5", lb.port());
    const std::string local = std::string("\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00", 16) + "hi";
    ASSERT_TRUE(write_all(c.get(), local.data(), local.size()));
    shutdown(c.get(), SHUT_WR);
    EXPECT_EQ(read_to_eof(c.get(), 5000), "PROXY TCP4 127.0.0.5 127.0.0.1 " +
                                              std::to_string(local_port(c.get())) + " " +
                                              std::to_string(lb.port()) + "\r\nhi");
  }
  const int accepted = echo.accepted();
  for (const std::string& bad : {std::string("GET / HTTP/1.0\r\n\r\n"), std::string("PROXY TCP4 1.2.3.4\r\n"),
                                 std::string("PROXY TCP4 1.2")}) {
    Fd c = connect_loopback(lb.port());
    ASSERT_TRUE(write_all(c.get(), bad.data(), bad.size()));
    // The last one stops short of a whole header and then closes its side.
    if (bad == "PROXY TCP4 1.2") shutdown(c.get(), SHUT_WR);
    EXPECT_EQ(read_to_eof(c.get(), 5000), "") << bad;
  }
  EXPECT_TRUE(eventually([&] { return lb.closed_total("bad_proxy_header") == 3; }))
      << lb.closed_total("bad_proxy_header");
  EXPECT_EQ(echo.accepted(), accepted) << "a bad header must not reach a backend";
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_open_direct_slots") == 0; }));
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

// The bytes behind a PROXY header wait in their buffer while the backend connects; when no
// backend answers, that buffer goes back all the same.
TEST(Proxy, AcceptProxyDataHeldDuringAFailedConnectIsReleased) {
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0,accept-proxy", "--backend",
                        "127.0.0.1:" + std::to_string(refused_port()), "--workers", "1",
                        "--health-interval", "0s", "--connect-attempts", "1"}))
      << lb.output();
  for (int i = 0; i < 3; ++i) {
    Fd c = connect_loopback(lb.port());
    const std::string sent = "PROXY TCP4 203.0.113.9 198.51.100.1 4444 443\r\nearly data";
    ASSERT_TRUE(write_all(c.get(), sent.data(), sent.size()));  // one segment: one recv
    EXPECT_EQ(read_to_eof(c.get(), 5000), "");
  }
  EXPECT_TRUE(eventually([&] { return lb.closed_total("connect_failed") == 3; }));
  EXPECT_EQ(lb.metric("ringlb_proxy_buffers_in_use"), 0);
  EXPECT_EQ(lb.metric("ringlb_open_direct_slots"), 0);
}

// A header in pieces whose client is closed while it waits for a buffer must not be inherited
// by the next client in the same connection slot (slots are reused last-freed first).
TEST(Proxy, AcceptProxyPartialHeaderDiesWithItsConnection) {
  std::atomic<uint64_t> written{0};
  Backend hose(firehose_handler(&written));
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0,accept-proxy", "--listen", "127.0.0.1:0",
                        "--backend", hose.address(), "--workers", "1", "--health-interval", "0s",
                        "--buffers", "8", "--buffer-size", "1024", "--max-connection-duration",
                        "1s"}))
      << lb.output();
  // P: the first piece of a header, stored while buffers are free.
  Fd p = connect_loopback(lb.port(0));
  ASSERT_TRUE(write_all(p.get(), "PROX", 4));
  std::this_thread::sleep_for(500ms);
  // Eight readers that stop reading take the whole pool (each holds a buffer it cannot send).
  std::vector<Fd> readers;
  for (int i = 0; i < 8; ++i) {
    readers.push_back(connect_loopback(lb.port(1)));
    char c;
    set_recv_timeout(readers.back().get(), 5000);
    ASSERT_TRUE(read_exact(readers.back().get(), &c, 1));
  }
  ASSERT_TRUE(eventually([&] { return lb.metric("ringlb_proxy_buffers_in_use") == 8; }))
      << lb.metric("ringlb_proxy_buffers_in_use");
  // The rest of P's header finds no buffer; P reaches its 1 s lifetime while it waits.
  const std::string rest = "Y TCP4 203.0.113.9 198.51.100.1 4444 443\r\n";
  ASSERT_TRUE(write_all(p.get(), rest.data(), rest.size()));
  EXPECT_EQ(read_to_eof(p.get(), 5000), "");
  // Q takes P's slot, waits for a buffer like P did, and gets one when the readers reach their
  // own lifetime. Its header must be read as sent, not glued to P's "PROX".
  Fd q = connect_loopback(lb.port(0));
  const std::string header = "PROXY TCP4 203.0.113.7 198.51.100.1 5555 443\r\n";
  ASSERT_TRUE(write_all(q.get(), header.data(), header.size()));
  set_recv_timeout(q.get(), 5000);
  char c;
  EXPECT_TRUE(read_exact(q.get(), &c, 1)) << "Q was not served";
  EXPECT_EQ(lb.closed_total("bad_proxy_header"), 0);
}

// Slowloris on the header: a byte every 150 ms keeps the connection busy, but the header must be
// whole within the proxy-header-timeout counted from the start (the idle timeout is longer).
TEST(Proxy, AcceptProxyHeaderTrickledInIsClosedAtTheHeaderTimeout) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  std::vector<std::string> args = accept_proxy_in_front_of(echo);
  args.insert(args.end(), {"--proxy-header-timeout", "600ms", "--idle-timeout", "30s"});
  ASSERT_TRUE(lb.start(args)) << lb.output();
  Fd c = connect_loopback(lb.port());
  const std::string header = "PROXY TCP4 203.0.113.9 198.51.100.1 4444 443\r\n";
  const auto t0 = Clock::now();
  size_t sent = 0;
  while (sent < header.size() && Clock::now() - t0 < 5s && write_all(c.get(), &header[sent], 1)) {
    ++sent;
    if (readable_within(c.get(), 150)) break;  // closed
  }
  EXPECT_EQ(read_to_eof(c.get(), 5000), "");
  const auto lived = Clock::now() - t0;
  EXPECT_GE(lived, 550ms);
  EXPECT_LT(lived, 2s);
  EXPECT_LT(sent, header.size());
  EXPECT_TRUE(eventually([&] { return lb.closed_total("bad_proxy_header") == 1; }));
  EXPECT_EQ(lb.closed_total("idle_timeout"), 0);
}

// Two ringlbs in a chain, and HAProxy in front of ringlb: each sender's v2 header is read, and
// the address of the client at the very front reaches the backend at the very back.
TEST(Proxy, AcceptProxyBehindRinglbAndBehindHaproxy) {
  Backend echo(echo_handler());
  RinglbProcess back;
  ASSERT_TRUE(back.start(accept_proxy_in_front_of(echo)))
      << back.output();
  const std::string back_address = "127.0.0.1:" + std::to_string(back.port());
  RinglbProcess front;
  ASSERT_TRUE(front.start({"--listen", "127.0.0.1:0", "--backend", back_address + ",send-proxy-v2",
                           "--workers", "1", "--health-interval", "0s"}))
      << front.output();

  TempDir tmp;
  ASSERT_FALSE(tmp.path().empty());
  uint16_t haproxy_port = 0;
  { Fd free_port = listen_loopback(&haproxy_port); }
  const std::string conf = tmp.path() + "/haproxy.cfg";
  {
    std::ofstream f(conf);
    f << "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n"
      << "listen front\n  bind 127.0.0.1:" << haproxy_port << "\n  server back " << back_address
      << " send-proxy-v2\n";
  }
  ChildProcess haproxy({"haproxy", "-db", "-f", conf});
  ASSERT_TRUE(haproxy.started());
  ASSERT_TRUE(eventually([&] { return static_cast<bool>(connect_loopback(haproxy_port)); }));

  for (const auto& [name, port] : {std::pair<std::string, uint16_t>{"ringlb", front.port()},
                                   std::pair<std::string, uint16_t>{"haproxy", haproxy_port}}) {
    Fd c = connect_loopback_from("127.0.0.6", port);
    ASSERT_TRUE(c) << name;
    ASSERT_TRUE(write_all(c.get(), "chained", 7));
    shutdown(c.get(), SHUT_WR);
    EXPECT_EQ(read_to_eof(c.get(), 5000), "PROXY TCP4 127.0.0.6 127.0.0.1 " +
                                              std::to_string(local_port(c.get())) + " " +
                                              std::to_string(port) + "\r\nchained")
        << "through " << name;
  }
  EXPECT_EQ(back.closed_total("bad_proxy_header"), 0);
  EXPECT_EQ(front.stop(SIGTERM), 0);
  EXPECT_EQ(back.stop(SIGTERM), 0);
}

}  // namespace
}  // namespace ringlb::testing
