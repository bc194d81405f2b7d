#include "server/proxy_protocol.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>

namespace ringlb {
namespace {

sockaddr_in v4(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

sockaddr_in6 v6(const char* ip, uint16_t port) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  inet_pton(AF_INET6, ip, &a.sin6_addr);
  return a;
}

std::string header(ProxyProtocol version, const void* src, const void* dst) {
  char out[kMaxProxyHeader];
  const size_t n = write_proxy_header(version, static_cast<const sockaddr*>(src),
                                      static_cast<const sockaddr*>(dst), out);
  return std::string(out, n);
}

const std::string kSignature("\r\n\r\n\0\r\nQUIT\n", 12);

TEST(ProxyProtocol, V1Ipv4) {
  const sockaddr_in src = v4("192.0.2.7", 51234), dst = v4("10.1.2.3", 443);
  EXPECT_EQ(header(ProxyProtocol::kV1, &src, &dst), "PROXY TCP4 192.0.2.7 10.1.2.3 51234 443\r\n");
}

TEST(ProxyProtocol, V1Ipv6AtItsLongestFitsTheBuffer) {
  const sockaddr_in6 src = v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535),
                     dst = v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd", 65534);
  const std::string h = header(ProxyProtocol::kV1, &src, &dst);
  EXPECT_EQ(h,
            "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe "
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd 65535 65534\r\n");
  EXPECT_EQ(h.size(), 104u);  // the spec's bound is 107 plus CRLF
}

TEST(ProxyProtocol, V2Ipv4IsBinaryInNetworkOrder) {
  const sockaddr_in src = v4("192.0.2.7", 0x1234), dst = v4("10.1.2.3", 443);
  const std::string h = header(ProxyProtocol::kV2, &src, &dst);
  ASSERT_EQ(h.size(), 28u);
  EXPECT_EQ(h.substr(0, 12), kSignature);
  EXPECT_EQ(h.substr(12),
            std::string("\x21\x11\x00\x0C"            // v2 PROXY, TCP/IPv4, 12 bytes follow
                        "\xC0\x00\x02\x07"            // 192.0.2.7
                        "\x0A\x01\x02\x03"            // 10.1.2.3
                        "\x12\x34\x01\xBB", 16));     // 0x1234, 443
}

TEST(ProxyProtocol, V2Ipv6) {
  const sockaddr_in6 src = v6("2001:db8::1", 40000), dst = v6("::1", 8080);
  const std::string h = header(ProxyProtocol::kV2, &src, &dst);
  ASSERT_EQ(h.size(), 52u);
  EXPECT_EQ(h.substr(12, 4), std::string("\x21\x21\x00\x24", 4));  // TCP/IPv6, 36 bytes
  EXPECT_EQ(h.substr(16, 16), std::string("\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16));
  EXPECT_EQ(h.substr(32, 16), std::string("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01", 16));
  EXPECT_EQ(h.substr(48), std::string("\x9C\x40\x1F\x90", 4));
}

TEST(ProxyProtocol, MixedFamiliesFallBackToTheUnknownForm) {
  const sockaddr_in src = v4("192.0.2.7", 1);
  const sockaddr_in6 dst = v6("::1", 2);
  EXPECT_EQ(header(ProxyProtocol::kV1, &src, &dst), "PROXY UNKNOWN\r\n");
  EXPECT_EQ(header(ProxyProtocol::kV2, &src, &dst), kSignature + std::string("\x20\x00\x00\x00", 4));
}

TEST(ProxyProtocol, NoneWritesNothing) {
  const sockaddr_in src = v4("192.0.2.7", 1), dst = v4("10.0.0.1", 2);
  EXPECT_EQ(header(ProxyProtocol::kNone, &src, &dst), "");
}

}  // namespace
}  // namespace ringlb
