#include "server/protocol/proxy_protocol.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>
#include <vector>

#include "server/base/address.h"

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

TEST(ProxyProtocol, LocalFormForTheSendersOwnConnections) {
  char out[kMaxProxyHeader];
  size_t n = write_proxy_header_local(ProxyProtocol::kV1, out);
  EXPECT_EQ(std::string(out, n), "PROXY UNKNOWN\r\n");
  n = write_proxy_header_local(ProxyProtocol::kV2, out);
  EXPECT_EQ(std::string(out, n), kSignature + std::string("\x20\x00\x00\x00", 4));
  EXPECT_EQ(write_proxy_header_local(ProxyProtocol::kNone, out), 0u);
}

TEST(ProxyProtocol, NoneWritesNothing) {
  const sockaddr_in src = v4("192.0.2.7", 1), dst = v4("10.0.0.1", 2);
  EXPECT_EQ(header(ProxyProtocol::kNone, &src, &dst), "");
}

ParseResult parse(const std::string& bytes, ParsedProxyHeader* out) {
  return parse_proxy_header(bytes.data(), bytes.size(), out);
}

std::string address_text(const sockaddr_storage& ss) {
  return address_from_sockaddr(reinterpret_cast<const sockaddr*>(&ss), sizeof(ss)).to_string();
}

TEST(ProxyProtocolParse, ReadsBackWhatItWritesFollowedByData) {
  const sockaddr_in src4 = v4("192.0.2.7", 51234), dst4 = v4("10.1.2.3", 443);
  const sockaddr_in6 src6 = v6("2001:db8::7", 40000), dst6 = v6("2001:db8::1", 8443);
  for (ProxyProtocol version : {ProxyProtocol::kV1, ProxyProtocol::kV2}) {
    for (bool ipv6 : {false, true}) {
      const std::string h = ipv6 ? header(version, &src6, &dst6) : header(version, &src4, &dst4);
      ParsedProxyHeader p;
      ASSERT_EQ(parse(h + "GET / HTTP/1.1\r\n", &p), ParseResult::kComplete) << h;
      EXPECT_EQ(p.length, h.size());
      ASSERT_TRUE(p.has_addresses);
      EXPECT_EQ(address_text(p.src), ipv6 ? "[2001:db8::7]:40000" : "192.0.2.7:51234");
      EXPECT_EQ(address_text(p.dst), ipv6 ? "[2001:db8::1]:8443" : "10.1.2.3:443");
      // Every shorter prefix asks for more, never fails: headers may arrive in pieces.
      for (size_t n = 0; n < h.size(); ++n) {
        EXPECT_EQ(parse(h.substr(0, n), &p), ParseResult::kIncomplete) << n << " of " << h;
      }
    }
  }
}

TEST(ProxyProtocolParse, UnknownAndLocalCarryNoAddresses) {
  ParsedProxyHeader p;
  ASSERT_EQ(parse("PROXY UNKNOWN\r\nxyz", &p), ParseResult::kComplete);
  EXPECT_EQ(p.length, 15u);
  EXPECT_FALSE(p.has_addresses);
  ASSERT_EQ(parse("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", &p), ParseResult::kComplete);
  EXPECT_FALSE(p.has_addresses);
  const std::string local = kSignature + std::string("\x20\x00\x00\x00", 4);
  ASSERT_EQ(parse(local, &p), ParseResult::kComplete);
  EXPECT_EQ(p.length, 16u);
  EXPECT_FALSE(p.has_addresses);
  // A v2 PROXY over a Unix socket (family 0x31, 216 bytes of addresses): valid, no TCP addresses.
  const std::string unix_header = kSignature + std::string("\x21\x31\x00\xD8", 4) + std::string(216, 'u');
  ASSERT_EQ(parse(unix_header, &p), ParseResult::kComplete);
  EXPECT_EQ(p.length, 232u);
  EXPECT_FALSE(p.has_addresses);
}

TEST(ProxyProtocolParse, V2TlvsAreSkipped) {
  // TCP/IPv4 with 12 bytes of addresses and a 7-byte TLV (type 0x04 NOOP, length 4).
  const std::string h = kSignature + std::string("\x21\x11\x00\x13", 4) +
                        std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x00\x50\x01\xBB", 12) +
                        std::string("\x04\x00\x04zzzz", 7);
  ParsedProxyHeader p;
  ASSERT_EQ(parse(h + "data", &p), ParseResult::kComplete);
  EXPECT_EQ(p.length, h.size());
  EXPECT_EQ(address_text(p.src), "1.2.3.4:80");
  EXPECT_EQ(address_text(p.dst), "5.6.7.8:443");
}

TEST(ProxyProtocolParse, RejectsWhatIsNotAHeader) {
  const std::vector<std::string> bad = {
      "GET / HTTP/1.1\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1111\r\n",          // a port missing
      "PROXY TCP4 1.2.3.4 5.6.7.8 1111 65536\r\n",    // port out of range
      "PROXY TCP4 1.2.3.4 5.6.7.8 01111 2222\r\n",    // leading zero
      "PROXY TCP4 1.2.3.4  5.6.7.8 1111 2222\r\n",    // two spaces
      "PROXY TCP4 ::1 ::2 1111 2222\r\n",             // IPv6 addresses under TCP4
      "PROXY TCP6 1.2.3.4 5.6.7.8 1111 2222\r\n",     // and the reverse
      "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\n",        // no CR
      "PROXY UDP4 1.2.3.4 5.6.7.8 1111 2222\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222 extra\r\n",
      "PROXY " + std::string(120, 'x'),                 // no end within the spec's 107 bytes
      kSignature + std::string("\x11\x11\x00\x0C", 4) + std::string(12, '\0'),  // version 1
      kSignature + std::string("\x22\x11\x00\x0C", 4) + std::string(12, '\0'),  // command 2
      kSignature + std::string("\x21\x11\x00\x08", 4) + std::string(8, '\0'),   // short TCP4
      kSignature + std::string("\x21\x21\x00\x0C", 4) + std::string(12, '\0'),  // short TCP6
      kSignature + std::string("\x21\x11\x10\x00", 4),  // 4096 bytes of body: over the limit
  };
  for (const std::string& b : bad) {
    ParsedProxyHeader p;
    EXPECT_EQ(parse(b, &p), ParseResult::kInvalid) << b;
  }
}

}  // namespace
}  // namespace ringlb
