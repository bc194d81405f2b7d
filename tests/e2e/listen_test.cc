// Listening addresses: an IPv6 wildcard is dual-stack unless `v6only` is given (HAProxy's name).
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>

#include <string>

#include "tests/support/backends.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

// A TCP client to `ip`:port (IPv4 or IPv6 text), or an empty Fd when the connect fails.
Fd connect_to(const std::string& ip, uint16_t port) {
  sockaddr_storage ss{};
  socklen_t len;
  if (ip.find(':') != std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr);
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &a->sin_addr);
    len = sizeof(*a);
  }
  Fd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return Fd();
  return fd;
}

// A client from `ip` through ringlb to the echo backend: true when its bytes come back.
bool proxied(const std::string& ip, uint16_t port) {
  Fd fd = connect_to(ip, port);
  if (!fd) return false;
  set_recv_timeout(fd.get(), 5000);
  char back[5] = {};
  return write_all(fd.get(), "hello", 5) && read_exact(fd.get(), back, 5) &&
         std::string(back, 5) == "hello";
}

TEST(Listen, IPv6WildcardIsDualStackByDefault) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "[::]:0", "--backend", echo.address()})) << lb.output();
  EXPECT_TRUE(proxied("127.0.0.1", lb.port()));
  EXPECT_TRUE(proxied("::1", lb.port()));
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(Listen, V6onlyRefusesIPv4Clients) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "[::]:0,v6only", "--backend", echo.address()})) << lb.output();
  EXPECT_FALSE(connect_to("127.0.0.1", lb.port())) << "an IPv4 client reached a v6only listener";
  EXPECT_TRUE(proxied("::1", lb.port()));
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(Listen, V6onlyOnAnIPv4AddressExitsTwo) {
  RunResult r = run_command({runfile("server/ringlb"), "--listen", "127.0.0.1:0,v6only",
                             "--backend", "127.0.0.1:1", "--metrics-listen", "none"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("v6only"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("needs an IPv6 address"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace ringlb::testing
