// PROXY v2 TLVs of a TLS client (ALPN, AUTHORITY, SSL with its sub-TLVs, the client
// certificate): the bytes HAProxy's layout gives, read back by ringlb's own parser and header
// reader, and malformed blocks refused. (tests/tls/haproxy_tlvs_test.cc checks the layout
// against a real HAProxy.)
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>
#include <vector>

#include "server/protocol/proxy_header_reader.h"
#include "server/protocol/proxy_protocol.h"
#include "server/protocol/proxy_tlvs.h"

namespace ringlb {
namespace {

const std::string kSignature("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12);

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

ProxyTlvs identity() {
  ProxyTlvs t;
  t.alpn = "h2";
  t.authority = "www.example.com";
  t.ssl = true;
  t.ssl_client = kPp2ClientSsl | kPp2ClientCertConn | kPp2ClientCertSess;
  t.ssl_verify = 0;
  t.ssl_version = "TLSv1.3";
  t.ssl_cn = "alice";
  t.ssl_cipher = "TLS_AES_256_GCM_SHA384";
  t.ssl_sig_alg = "ecdsa-with-SHA256";
  t.ssl_key_alg = "EC256";
  return t;
}

std::string write(const sockaddr* src, const sockaddr* dst, const ProxyTlvs& t) {
  const size_t size = proxy_v2_size(src, dst, t);
  std::string out(size, '\0');
  EXPECT_EQ(write_proxy_v2(src, dst, t, out.data(), out.size()), size);
  return out;
}

std::string tlv(uint8_t type, const std::string& value) {
  return std::string(1, static_cast<char>(type)) + static_cast<char>(value.size() >> 8) +
         static_cast<char>(value.size() & 0xFF) + value;
}

// The bytes, spelled out from doc/proxy-protocol.txt 2.2 and HAProxy's make_proxy_line_v2
// (ALPN, AUTHORITY, then SSL with version, CN, key, signature, cipher).
TEST(ProxyTlvs, WritesHaproxysLayout) {
  const sockaddr_in src = v4("192.0.2.7", 51234), dst = v4("10.1.2.3", 443);
  const std::string ssl_value = std::string("\x07\x00\x00\x00\x00", 5) + tlv(0x21, "TLSv1.3") + tlv(0x22, "alice") +
                                tlv(0x25, "EC256") + tlv(0x24, "ecdsa-with-SHA256") +
                                tlv(0x23, "TLS_AES_256_GCM_SHA384");
  const std::string tlvs = tlv(0x01, "h2") + tlv(0x02, "www.example.com") + tlv(0x20, ssl_value);
  const std::string body = std::string("\xC0\x00\x02\x07\x0A\x01\x02\x03\xC8\x22\x01\xBB", 12) + tlvs;
  const std::string expected = kSignature + "\x21\x11" + static_cast<char>(body.size() >> 8) +
                               static_cast<char>(body.size() & 0xFF) + body;
  EXPECT_EQ(write(reinterpret_cast<const sockaddr*>(&src), reinterpret_cast<const sockaddr*>(&dst), identity()),
            expected);
}

TEST(ProxyTlvs, RoundTripThroughTheParserWithAClientCertificate) {
  const sockaddr_in src4 = v4("192.0.2.7", 51234), dst4 = v4("10.1.2.3", 443);
  const sockaddr_in6 src6 = v6("2001:db8::7", 40000), dst6 = v6("2001:db8::1", 8443);
  ProxyTlvs t = identity();
  t.ssl_client_cert = std::string(1500, '\x30');  // a DER certificate's size
  for (bool ipv6 : {false, true}) {
    const sockaddr* src = ipv6 ? reinterpret_cast<const sockaddr*>(&src6) : reinterpret_cast<const sockaddr*>(&src4);
    const sockaddr* dst = ipv6 ? reinterpret_cast<const sockaddr*>(&dst6) : reinterpret_cast<const sockaddr*>(&dst4);
    const std::string h = write(src, dst, t);
    EXPECT_GT(h.size(), kMaxProxyHeader) << "a certificate needs more than the address-only buffer";
    ParsedProxyHeader p;
    ProxyTlvs back;
    ASSERT_EQ(parse_proxy_header((h + "hello").data(), h.size() + 5, &p, &back), ParseResult::kComplete);
    EXPECT_EQ(p.length, h.size());
    EXPECT_TRUE(p.has_addresses);
    EXPECT_EQ(back, t);
    // The reader, fed the header a few bytes at a time (as a socket shows it), gets the same.
    ProxyHeaderReader reader;
    ProxyTlvs pieces;
    size_t consumed = 0;
    ProxyHeaderReader::Step s;
    while (consumed < h.size()) {
      const size_t show = std::min<size_t>(97, h.size() - consumed);
      s = reader.on_peek(h.data() + consumed, show, &p, &pieces);
      ASSERT_NE(s.next, ProxyHeaderReader::Next::kInvalid);
      consumed += s.consume;
      if (s.next == ProxyHeaderReader::Next::kComplete) break;
    }
    EXPECT_EQ(s.next, ProxyHeaderReader::Next::kComplete);
    EXPECT_EQ(consumed, h.size());
    EXPECT_EQ(pieces, t);
  }
}

TEST(ProxyTlvs, PlainTcpAndNoTlsWriteNoTlvs) {
  const sockaddr_in src = v4("192.0.2.7", 1), dst = v4("10.0.0.1", 2);
  const sockaddr* s = reinterpret_cast<const sockaddr*>(&src);
  const sockaddr* d = reinterpret_cast<const sockaddr*>(&dst);
  char plain[kMaxProxyHeader];
  const size_t n = write_proxy_header(ProxyProtocol::kV2, s, d, plain);
  EXPECT_EQ(write(s, d, ProxyTlvs{}), std::string(plain, n)) << "no TLVs: the same header as send-proxy-v2";
  ProxyTlvs ssl_only;
  ssl_only.ssl = true;  // HAProxy's PP2_TYPE_SSL for a plain TCP client: client 0, no sub-TLVs
  const std::string with_ssl = std::string(plain, 14) + std::string("\x00\x14", 2) +  // body 12 + 8
                               std::string(plain + 16, n - 16) + std::string("\x20\x00\x05\x00\x00\x00\x00\x00", 8);
  EXPECT_EQ(write(s, d, ssl_only), with_ssl);
  ParsedProxyHeader p;
  ProxyTlvs back = identity();
  ASSERT_EQ(parse_proxy_header(plain, n, &p, &back), ParseResult::kComplete);
  EXPECT_EQ(back, ProxyTlvs{}) << "cleared when the header has none";
  // Mixed families: the LOCAL form, no TLVs.
  const sockaddr_in6 other = v6("::1", 3);
  const std::string local = write(s, reinterpret_cast<const sockaddr*>(&other), identity());
  EXPECT_EQ(local, kSignature + std::string("\x20\x00\x00\x00", 4));
}

TEST(ProxyTlvs, SizesAndLimits) {
  const sockaddr_in src = v4("192.0.2.7", 1), dst = v4("10.0.0.1", 2);
  const sockaddr* s = reinterpret_cast<const sockaddr*>(&src);
  const sockaddr* d = reinterpret_cast<const sockaddr*>(&dst);
  ProxyTlvs t = identity();
  const size_t size = proxy_v2_size(s, d, t);
  std::string out(size, '\0');
  EXPECT_EQ(write_proxy_v2(s, d, t, out.data(), size - 1), 0u) << "a buffer one byte short writes nothing";
  t.ssl_client_cert = std::string(65535, 'x');
  EXPECT_EQ(proxy_v2_size(s, d, t), 0u) << "over a v2 header's 16-bit length";
  std::string big(kMaxProxyV2Header, '\0');
  EXPECT_EQ(write_proxy_v2(s, d, t, big.data(), big.size()), 0u);
  // The receiving side keeps its limit: a header over kMaxAcceptedProxyHeader is refused.
  t.ssl_client_cert = std::string(kMaxAcceptedProxyHeader, 'x');
  const std::string h = write(s, d, t);
  ParsedProxyHeader p;
  EXPECT_EQ(parse_proxy_header(h.data(), h.size(), &p), ParseResult::kInvalid);
}

TEST(ProxyTlvs, MalformedBlocksAreRefused) {
  const std::string addresses = std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x00\x50\x01\xBB", 12);
  const auto header = [&](const std::string& tlvs) {
    const std::string body = addresses + tlvs;
    return kSignature + "\x21\x11" + static_cast<char>(body.size() >> 8) + static_cast<char>(body.size() & 0xFF) + body;
  };
  const std::vector<std::string> bad = {
      std::string("\x01\x00", 2),                                    // a TLV header cut short
      std::string("\x01\x00\x05h2", 5),                              // a value longer than the block
      tlv(0x20, std::string("\x01\x00\x00", 3)),                     // SSL shorter than client + verify
      tlv(0x20, std::string("\x01\x00\x00\x00\x00\x21\x00\x09TLS", 11)),  // a sub-TLV past SSL's end
  };
  for (const std::string& b : bad) {
    ParsedProxyHeader p;
    const std::string h = header(b);
    EXPECT_EQ(parse_proxy_header(h.data(), h.size(), &p), ParseResult::kInvalid);
  }
  // Types ringlb does not read are skipped; the ones it does still count.
  const std::string h = header(tlv(0x04, "zz") + tlv(0x05, "id") + tlv(0x01, "http/1.1") + tlv(0xEA, "aws"));
  ParsedProxyHeader p;
  ProxyTlvs t;
  ASSERT_EQ(parse_proxy_header(h.data(), h.size(), &p, &t), ParseResult::kComplete);
  EXPECT_EQ(t.alpn, "http/1.1");
  EXPECT_FALSE(t.ssl);
}

}  // namespace
}  // namespace ringlb
