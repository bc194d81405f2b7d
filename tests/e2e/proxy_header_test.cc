// The PROXY protocol end to end: ringlb sending it to backends (v1, v2, IPv6, health checks,
// read by nginx) and reading it from clients (accept-proxy: in pieces, LOCAL, bad, partial,
// trickled, behind ringlb and HAProxy). Split from proxy_test.cc.
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


// HAProxy's send-proxy / send-proxy-v2: a backend behind ringlb learns the client's address.
TEST(ProxyHeader, SendProxyPutsTheClientAddressBeforeItsFirstByte) {
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

TEST(ProxyHeader, SendProxyV2OverIPv6GoesOnlyToTheBackendsConfiguredForIt) {
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
TEST(ProxyHeader, HealthChecksOfSendProxyBackendsSendALocalHeader) {
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
TEST(ProxyHeader, SendProxyHeadersOfBothVersionsAreReadByNginx) {
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

TEST(ProxyHeader, AcceptProxyTakesTheClientAddressFromTheHeaderEvenInPieces) {
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

TEST(ProxyHeader, AcceptProxyLocalKeepsTheConnectionsOwnAddressAndBadHeadersAreClosed) {
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
TEST(ProxyHeader, AcceptProxyDataHeldDuringAFailedConnectIsReleased) {
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
TEST(ProxyHeader, AcceptProxyPartialHeaderDiesWithItsConnection) {
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
TEST(ProxyHeader, AcceptProxyHeaderTrickledInIsClosedAtTheHeaderTimeout) {
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
TEST(ProxyHeader, AcceptProxyBehindRinglbAndBehindHaproxy) {
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
