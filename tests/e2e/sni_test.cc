// SNI routing: a listener picks the cluster by the server name of the client's TLS ClientHello,
// which it only peeks at, so the backend gets it as sent. Real TLS: openssl s_server backends
// with self-signed certificates made here, openssl s_client clients that report the certificate
// they got.
#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
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

// An openssl s_server with a self-signed certificate for CN=`name` (made here).
class TlsBackend {
 public:
  TlsBackend(const std::string& dir, const std::string& name) {
    const std::string key = dir + "/" + name + ".key", cert = dir + "/" + name + ".crt";
    made_ = run_command({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name,
                         "-keyout", key, "-out", cert, "-days", "1"})
                .exit_code == 0;
    { Fd free_port = listen_loopback(&port_); }
    server_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        "openssl", "s_server", "-quiet", "-www", "-accept", "127.0.0.1:" + std::to_string(port_), "-cert", cert,
        "-key", key});
  }
  bool ready() const {
    return made_ && server_->started() && eventually([&] { return static_cast<bool>(connect_loopback(port_)); });
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  bool made_ = false;
  uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> server_;
};

// The subject of the certificate an s_client sent to ringlb's `port` sees ("" when the handshake
// failed); no `server_name`: no SNI at all.
std::string certificate_seen(uint16_t port, const std::string& server_name) {
  const std::string sni = server_name.empty() ? "-noservername" : "-servername " + server_name;
  RunResult r = run_command({"sh", "-c", "openssl s_client -brief -connect 127.0.0.1:" + std::to_string(port) +
                                             " " + sni + " </dev/null"});
  const std::string marker = "Peer certificate: CN = ";
  const size_t at = r.output.find(marker);
  if (at == std::string::npos) return "";
  return r.output.substr(at + marker.size(), r.output.find('\n', at) - at - marker.size());
}

// Between one client and ringlb: sends the client's first TLS record (its ClientHello) on in
// three segments, 100 ms apart, then copies both ways until both sides are done.
class SplittingRelay {
 public:
  explicit SplittingRelay(uint16_t to) : listener_(listen_loopback(&port_)), thread_([this, to] { run(to); }) {}
  ~SplittingRelay() { thread_.join(); }
  uint16_t port() const { return port_; }

 private:
  void run(uint16_t to) {
    pollfd p{listener_.get(), POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0) return;
    Fd client(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    Fd up = connect_loopback(to);
    int one = 1;
    setsockopt(up.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    set_recv_timeout(client.get(), 10000);
    std::string record(5, '\0');
    if (!read_exact(client.get(), record.data(), 5)) return;
    const size_t len = static_cast<size_t>(static_cast<uint8_t>(record[3])) << 8 | static_cast<uint8_t>(record[4]);
    record.resize(5 + len);
    if (!read_exact(client.get(), record.data() + 5, len)) return;
    const size_t third = record.size() / 3;
    for (size_t at = 0; at < record.size(); at += third) {
      if (!write_all(up.get(), record.data() + at, std::min(third, record.size() - at))) return;
      std::this_thread::sleep_for(100ms);
    }
    pollfd fds[2] = {{client.get(), POLLIN, 0}, {up.get(), POLLIN, 0}};
    int open = 2;
    char buf[16384];
    while (open > 0 && poll(fds, 2, 10000) > 0) {
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        const int other = fds[1 - i].fd >= 0 ? fds[1 - i].fd : (i == 0 ? up.get() : client.get());
        const ssize_t n = recv(fds[i].fd, buf, sizeof(buf), 0);
        if (n <= 0 || !write_all(other, buf, static_cast<size_t>(n))) {
          shutdown(other, SHUT_WR);
          fds[i].fd = -1;
          --open;
        }
      }
    }
  }

  uint16_t port_ = 0;
  Fd listener_;
  std::thread thread_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Sni, RoutesByServerNameExactWildcardAndDefault) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  TlsBackend api(dir.path(), "api.example.com"), www(dir.path(), "www.example.com"),
      mail(dir.path(), "mail.example.org"), wild(dir.path(), "wild.example.net"), fallback(dir.path(), "fallback");
  for (const TlsBackend* b : {&api, &www, &mail, &wild, &fallback}) ASSERT_TRUE(b->ready());
  const std::string toml = dir.path() + "/sni.toml";
  std::ofstream(toml) << "workers = 2\nhealth-interval = \"0s\"\n"
                      << "[cluster.api]\nbackends = [\"" << api.address() << "\"]\n"
                      << "[cluster.www]\nbackends = [\"" << www.address() << "\"]\n"
                      << "[cluster.mail]\nbackends = [\"" << mail.address() << "\"]\n"
                      << "[cluster.wild]\nbackends = [\"" << wild.address() << "\"]\n"
                      << "[cluster.fallback]\nbackends = [\"" << fallback.address() << "\"]\n"
                      << "[[listener]]\nname = \"tls\"\naddress = \"127.0.0.1:0\"\nsni = [\n"
                      << "  { name = \"api.example.com\", cluster = \"api\" },\n"
                      << "  { name = \"www.example.com\", cluster = \"www\" },\n"
                      << "  { name = \"mail.example.org\", cluster = \"mail\" },\n"
                      << "  { name = \"*.example.net\", cluster = \"wild\" },\n]\nsni-default = \"fallback\"\n"
                      << "[[listener]]\nname = \"strict\"\naddress = \"127.0.0.1:0\"\n"
                      << "sni = [{ name = \"api.example.com\", cluster = \"api\" }]\n";
  const std::string access_log = dir.path() + "/access.log";
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml, "--access-log", access_log})) << lb.output();

  EXPECT_EQ(certificate_seen(lb.port(0), "api.example.com"), "api.example.com");
  EXPECT_EQ(certificate_seen(lb.port(0), "WWW.Example.com"), "www.example.com");
  EXPECT_EQ(certificate_seen(lb.port(0), "mail.example.org"), "mail.example.org");
  EXPECT_EQ(certificate_seen(lb.port(0), "shop.example.net"), "wild.example.net");
  EXPECT_EQ(certificate_seen(lb.port(0), "example.net"), "fallback") << "a wildcard is not its own domain";
  {
    // A real ClientHello in three TCP segments.
    SplittingRelay relay(lb.port(0));
    EXPECT_EQ(certificate_seen(relay.port(), "mail.example.org"), "mail.example.org");
  }
  EXPECT_EQ(certificate_seen(lb.port(0), "unknown.test"), "fallback");
  EXPECT_EQ(certificate_seen(lb.port(0), ""), "fallback") << "no SNI";
  // No default: an unmatched name is closed.
  EXPECT_EQ(certificate_seen(lb.port(1), "api.example.com"), "api.example.com");
  EXPECT_EQ(certificate_seen(lb.port(1), "www.example.com"), "");
  EXPECT_TRUE(eventually([&] { return lb.closed_total("no_route") == 1; }));

  EXPECT_EQ(lb.metric("ringlb_sni_routed_total", {"listener=\"tls\"", "cluster=\"api\""}), 1);
  EXPECT_EQ(lb.metric("ringlb_sni_routed_total", {"listener=\"tls\"", "cluster=\"mail\""}), 2);
  EXPECT_EQ(lb.metric("ringlb_sni_routed_total", {"listener=\"tls\"", "cluster=\"fallback\""}), 3);
  EXPECT_EQ(lb.metric("ringlb_sni_routed_total", {"listener=\"strict\"", "cluster=\"api\""}), 1);
  EXPECT_EQ(lb.closed_total("bad_client_hello"), 0);
  // The access log names each client's listener, cluster and server name ("-": none).
  const auto logged = [&](const std::string& what) { return read_file(access_log).find(what) != std::string::npos; };
  EXPECT_TRUE(eventually([&] { return logged(" listener_name=strict cluster=- sni=www.example.com backend=- "); }))
      << read_file(access_log);
  for (const std::string& fields : std::vector<std::string>{" listener_name=tls cluster=api sni=api.example.com backend=" + api.address(),
                                    " listener_name=tls cluster=www sni=www.example.com backend=" + www.address(),  // lower-cased
                                    " listener_name=tls cluster=fallback sni=- backend=" + fallback.address(),
                                    " listener_name=tls cluster=fallback sni=unknown.test backend=",
                                    " listener_name=strict cluster=api sni=api.example.com backend="}) {
    // Each worker hands its lines over every 200 ms: another worker's may come a batch later.
    EXPECT_TRUE(eventually([&] { return logged(fields); }, 2s)) << fields << "\n" << read_file(access_log);
  }
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

// Plain backends that answer a letter and echo: what reached them, and from which cluster.
class RawSni : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    const std::string toml = dir_.path() + "/raw.toml";
    std::ofstream(toml) << "workers = 2\nhealth-interval = \"0s\"\ntls-inspect-timeout = \"1s\"\n"
                        << "[cluster.www]\nbackends = [\"" << www_.address() << "\"]\n"
                        << "[cluster.other]\nbackends = [\"" << other_.address() << "\"]\n"
                        << "[[listener]]\nname = \"tls\"\naddress = \"127.0.0.1:0\"\n"
                        << "sni = [{ name = \"www.example.com\", cluster = \"www\" }]\nsni-default = \"other\"\n"
                        << "[[listener]]\nname = \"behind-lb\"\naddress = \"127.0.0.1:0\"\naccept-proxy = true\n"
                        << "sni = [{ name = \"www.example.com\", cluster = \"www\" }]\nsni-default = \"other\"\n";
    ASSERT_TRUE(lb_.start({"--config", toml})) << lb_.output();
    hello_ = read_file(runfile("tests/protocol/corpus/client_hello/openssl_tls13_www.example.com"));
    ASSERT_GT(hello_.size(), 100u);
  }

  // A client that sends `pieces` as separate segments, `pause` apart.
  Fd send_in_pieces(uint16_t port, const std::vector<std::string>& pieces, std::chrono::milliseconds pause) {
    Fd c = connect_loopback(port);
    int one = 1;
    setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (const std::string& piece : pieces) {
      if (!write_all(c.get(), piece.data(), piece.size())) break;
      std::this_thread::sleep_for(pause);
    }
    return c;
  }

  TempDir dir_;
  Backend www_{name_then_echo_handler('w')}, other_{name_then_echo_handler('o')};
  RinglbProcess lb_;
  std::string hello_;
};

TEST_F(RawSni, AClientHelloInThreeSegmentsIsRoutedAndPassedOnWhole) {
  const std::string tail = "and the bytes behind it";
  Fd c = send_in_pieces(lb_.port(0), {hello_.substr(0, 3), hello_.substr(3, 60), hello_.substr(63) + tail}, 100ms);
  ASSERT_TRUE(c);
  set_recv_timeout(c.get(), 5000);
  std::string got(1 + hello_.size() + tail.size(), '\0');
  ASSERT_TRUE(read_exact(c.get(), got.data(), got.size()));
  EXPECT_EQ(got, "w" + hello_ + tail) << "routed to www, the hello first and whole";
  // Then small messages flow at once: the socket's low-water mark is back at one byte.
  char back[4];
  EXPECT_TRUE(write_all(c.get(), "ping", 4) && read_exact(c.get(), back, 4) && std::string(back, 4) == "ping");
  shutdown(c.get(), SHUT_WR);
  EXPECT_EQ(read_to_eof(c.get(), 5000), "");
  EXPECT_EQ(lb_.metric("ringlb_sni_routed_total", {"listener=\"tls\"", "cluster=\"www\""}), 1);
}

TEST_F(RawSni, APROXYHeaderFirstThenTheClientHello) {
  const std::string header = "PROXY TCP4 203.0.113.9 198.51.100.1 4444 443\r\n";
  Fd c = send_in_pieces(lb_.port(1), {header, hello_.substr(0, 100), hello_.substr(100)}, 50ms);
  shutdown(c.get(), SHUT_WR);
  EXPECT_EQ(read_to_eof(c.get(), 5000), "w" + hello_) << "the header is taken, the hello passed on";
  EXPECT_EQ(lb_.metric("ringlb_sni_routed_total", {"listener=\"behind-lb\"", "cluster=\"www\""}), 1);
}

TEST_F(RawSni, GarbageIsClosedAtOnce) {
  const auto t0 = Clock::now();
  Fd c = send_in_pieces(lb_.port(0), {"GET / HTTP/1.0\r\n\r\n"}, 0ms);
  EXPECT_EQ(read_to_eof(c.get(), 5000), "");
  EXPECT_LT(Clock::now() - t0, 500ms) << "not at once (the inspect timeout is 1 s)";
  EXPECT_TRUE(eventually([&] { return lb_.closed_total("bad_client_hello") == 1; }));
  EXPECT_EQ(www_.accepted() + other_.accepted(), 0);
}

TEST_F(RawSni, AClientHelloCutShortByAFinIsClosedAtOnce) {
  // Half a hello, then FIN: the socket is readable with nothing new to peek at. Closed at once,
  // not peeked at again and again until the timeout.
  const auto t0 = Clock::now();
  Fd c = send_in_pieces(lb_.port(0), {hello_.substr(0, 3), hello_.substr(3, 100)}, 50ms);
  shutdown(c.get(), SHUT_WR);
  EXPECT_EQ(read_to_eof(c.get(), 5000), "");
  EXPECT_LT(Clock::now() - t0, 700ms) << "not at once (the inspect timeout is 1 s)";
  EXPECT_TRUE(eventually([&] { return lb_.closed_total("bad_client_hello") == 1; }));
  EXPECT_EQ(www_.accepted() + other_.accepted(), 0);
}

TEST_F(RawSni, ATrickledClientHelloIsClosedAtTheInspectTimeout) {
  Fd c = connect_loopback(lb_.port(0));
  int one = 1;
  setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  const auto t0 = Clock::now();
  size_t sent = 0;
  while (sent < hello_.size() && Clock::now() - t0 < 5s && write_all(c.get(), &hello_[sent], 1)) {
    ++sent;
    if (readable_within(c.get(), 40)) break;  // closed
  }
  EXPECT_EQ(read_to_eof(c.get(), 5000), "");
  const auto lived = Clock::now() - t0;
  EXPECT_GE(lived, 950ms);
  EXPECT_LT(lived, 2500ms);
  EXPECT_LT(sent, hello_.size());
  EXPECT_TRUE(eventually([&] { return lb_.closed_total("bad_client_hello") == 1; }));
  EXPECT_EQ(www_.accepted() + other_.accepted(), 0);
}

TEST_F(RawSni, APlainTcpClientThatWaitsIsClosedAtTheInspectTimeout) {
  // A client of a server-speaks-first protocol (SMTP, SSH) says nothing: nothing to route by.
  Fd c = connect_loopback(lb_.port(0));
  const auto t0 = Clock::now();
  EXPECT_EQ(read_to_eof(c.get(), 5000), "");
  const auto lived = Clock::now() - t0;
  EXPECT_GE(lived, 950ms);
  EXPECT_LT(lived, 2500ms);
  EXPECT_TRUE(eventually([&] { return lb_.closed_total("bad_client_hello") == 1; }));
  // One that speaks plain TCP at once is not TLS: closed at once.
  Fd talker = send_in_pieces(lb_.port(0), {"hello\n"}, 0ms);
  EXPECT_EQ(read_to_eof(talker.get(), 5000), "");
  EXPECT_TRUE(eventually([&] { return lb_.closed_total("bad_client_hello") == 2; }));
  EXPECT_EQ(www_.accepted() + other_.accepted(), 0);
}

}  // namespace
}  // namespace ringlb::testing
