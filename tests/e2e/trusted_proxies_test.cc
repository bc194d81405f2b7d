// trusted-proxies and proxy-header-timeout of an accept-proxy listener: only the sources named
// may say who the client is (checked before a byte is read), and the header they send must be
// whole in time.
#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "tests/support/backends.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// One accept-proxy listener in front of the name backend, trusting 127.0.0.5 only, denying
// 198.51.100.0/24 (as named by a header), with an access log.
std::string write_config(const TempDir& dir, const std::string& backend) {
  const std::string path = dir.path() + "/trusted.toml";
  std::ofstream(path) << "workers = 2\nhealth-interval = \"0s\"\naccess-log = \"" << dir.path() << "/access.log\"\n"
                      << "\n[cluster.app]\nbackends = [\"" << backend << "\"]\n\n"
                      << "[[listener]]\nname = \"behind-lb\"\naddress = \"127.0.0.1:0\"\ncluster = \"app\"\n"
                      << "accept-proxy = true\ntrusted-proxies = [\"127.0.0.5/32\"]\n"
                      << "proxy-header-timeout = \"300ms\"\ndeny = [\"198.51.100.0/24\"]\n";
  return path;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// What a client from `source` that sends `header` gets back ("" when closed).
std::string answer(uint16_t port, const char* source, const std::string& header) {
  Fd c = connect_loopback_from(source, port);
  if (!c || !write_all(c.get(), header.data(), header.size())) return "";
  return read_to_eof(c.get(), 5000);
}

TEST(TrustedProxies, OnlyTrustedSourcesMaySendAHeader) {
  Backend named(name_handler("served"));
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_config(dir, named.address())})) << lb.output();
  const std::string port = std::to_string(lb.port());

  // From the trusted proxy: its header names the client, in the ACL check and the access log.
  EXPECT_EQ(answer(lb.port(), "127.0.0.5", "PROXY TCP4 203.0.113.7 127.0.0.1 4711 " + port + "\r\n"), "served");
  EXPECT_EQ(answer(lb.port(), "127.0.0.5", "PROXY TCP4 198.51.100.3 127.0.0.1 4712 " + port + "\r\n"), "")
      << "the client the header named is denied";
  EXPECT_TRUE(eventually([&] { return lb.closed_total("denied") == 1; }));

  // The same header from anyone else: closed before it is read, and never sent on.
  const int accepted = named.accepted();
  EXPECT_EQ(answer(lb.port(), "127.0.0.6", "PROXY TCP4 203.0.113.7 127.0.0.1 4713 " + port + "\r\n"), "");
  EXPECT_TRUE(eventually([&] { return lb.closed_total("untrusted_proxy") == 1; }));
  EXPECT_EQ(named.accepted(), accepted);
  EXPECT_EQ(lb.closed_total("bad_proxy_header"), 0) << "the untrusted header was read";

  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
  const std::string log = read_file(dir.path() + "/access.log");
  EXPECT_NE(log.find("client=203.0.113.7:4711 "), std::string::npos) << log;
  EXPECT_NE(log.find("client=198.51.100.3:4712 "), std::string::npos) << log;
  EXPECT_NE(log.find("client=127.0.0.6:"), std::string::npos) << "the untrusted source, as it is\n" << log;
  EXPECT_NE(log.find("close=untrusted_proxy"), std::string::npos) << log;
}

// Slowloris on the header from a trusted source: a byte every 50 ms, closed at the header
// timeout (300 ms) counted from the hand-off, well before the idle timeout.
TEST(TrustedProxies, ATrickledHeaderIsClosedAtTheHeaderTimeout) {
  Backend named(name_handler("served"));
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_config(dir, named.address())})) << lb.output();
  Fd c = connect_loopback_from("127.0.0.5", lb.port());
  ASSERT_TRUE(c);
  int one = 1;
  setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  const std::string header = "PROXY TCP4 203.0.113.9 198.51.100.1 4444 443\r\n";
  const auto t0 = Clock::now();
  size_t sent = 0;
  while (sent < header.size() && Clock::now() - t0 < 5s && write_all(c.get(), &header[sent], 1)) {
    ++sent;
    if (readable_within(c.get(), 50)) break;  // closed
  }
  EXPECT_EQ(read_to_eof(c.get(), 5000), "");
  const auto lived = Clock::now() - t0;
  EXPECT_GE(lived, 250ms);
  EXPECT_LT(lived, 1500ms);
  EXPECT_LT(sent, header.size());
  EXPECT_TRUE(eventually([&] { return lb.closed_total("bad_proxy_header") == 1; }));
  EXPECT_EQ(named.accepted(), 0);
}

// Without trusted-proxies anyone may send a header; a client closed before its header was read
// is still named in the access log by its socket's address (asked for before anything is read).
TEST(TrustedProxies, AClientClosedBeforeItsHeaderIsNamedInTheAccessLog) {
  Backend named(name_handler("served"));
  TempDir dir;
  const std::string path = dir.path() + "/open.toml";
  std::ofstream(path) << "health-interval = \"0s\"\naccess-log = \"" << dir.path() << "/access.log\"\n"
                      << "\n[cluster.app]\nbackends = [\"" << named.address() << "\"]\n\n"
                      << "[[listener]]\nname = \"open\"\naddress = \"127.0.0.1:0\"\ncluster = \"app\"\n"
                      << "accept-proxy = true\n";
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", path})) << lb.output();
  EXPECT_EQ(answer(lb.port(), "127.0.0.9", "NOT A HEADER\r\n"), "");
  EXPECT_TRUE(eventually([&] { return lb.closed_total("bad_proxy_header") == 1; }));
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
  const std::string log = read_file(dir.path() + "/access.log");
  EXPECT_NE(log.find("client=127.0.0.9:"), std::string::npos) << log;
  EXPECT_NE(log.find("close=bad_proxy_header"), std::string::npos) << log;
}

}  // namespace
}  // namespace ringlb::testing
