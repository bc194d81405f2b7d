#include "server/protocol/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace ringlb {
namespace {

constexpr unsigned char kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                            0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

bool same_ip_family(const sockaddr* src, const sockaddr* dst) {
  return src->sa_family == dst->sa_family &&
         (src->sa_family == AF_INET || src->sa_family == AF_INET6);
}

const void* ip_of(const sockaddr* sa) {
  return sa->sa_family == AF_INET ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr)
                                  : static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr);
}

// Network byte order, as both versions carry it (v1 prints it after ntohs).
uint16_t port_of(const sockaddr* sa) {
  return sa->sa_family == AF_INET ? reinterpret_cast<const sockaddr_in*>(sa)->sin_port
                                  : reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port;
}

size_t write_v1_unknown(char (&out)[kMaxProxyHeader]) {
  static constexpr char kUnknown[] = "PROXY UNKNOWN\r\n";
  memcpy(out, kUnknown, sizeof(kUnknown) - 1);
  return sizeof(kUnknown) - 1;
}

size_t write_v2_local(char (&out)[kMaxProxyHeader]) {
  memcpy(out, kV2Signature, sizeof(kV2Signature));
  unsigned char* p = reinterpret_cast<unsigned char*>(out) + sizeof(kV2Signature);
  p[0] = 0x20;  // version 2, LOCAL: the receiver keeps the connection's own addresses
  p[1] = 0x00;  // AF_UNSPEC
  p[2] = p[3] = 0;
  return sizeof(kV2Signature) + 4;
}

size_t write_v1(const sockaddr* src, const sockaddr* dst, char (&out)[kMaxProxyHeader]) {
  if (!same_ip_family(src, dst)) return write_v1_unknown(out);
  char src_ip[INET6_ADDRSTRLEN], dst_ip[INET6_ADDRSTRLEN];
  inet_ntop(src->sa_family, ip_of(src), src_ip, sizeof(src_ip));
  inet_ntop(dst->sa_family, ip_of(dst), dst_ip, sizeof(dst_ip));
  const int n = snprintf(out, sizeof(out), "PROXY %s %s %s %u %u\r\n",
                         src->sa_family == AF_INET ? "TCP4" : "TCP6", src_ip, dst_ip,
                         ntohs(port_of(src)), ntohs(port_of(dst)));
  // The longest possible line (two full IPv6 addresses, 5-digit ports) is 104 bytes.
  return static_cast<size_t>(n);
}

size_t write_v2(const sockaddr* src, const sockaddr* dst, char (&out)[kMaxProxyHeader]) {
  if (!same_ip_family(src, dst)) return write_v2_local(out);
  memcpy(out, kV2Signature, sizeof(kV2Signature));
  unsigned char* p = reinterpret_cast<unsigned char*>(out) + sizeof(kV2Signature);
  const bool v4 = src->sa_family == AF_INET;
  const size_t ip_len = v4 ? 4 : 16;
  const uint16_t body = static_cast<uint16_t>(2 * ip_len + 4);
  p[0] = 0x21;                // version 2, PROXY
  p[1] = v4 ? 0x11 : 0x21;    // TCP over IPv4 / IPv6
  p[2] = static_cast<unsigned char>(body >> 8);
  p[3] = static_cast<unsigned char>(body & 0xFF);
  p += 4;
  memcpy(p, ip_of(src), ip_len);
  memcpy(p + ip_len, ip_of(dst), ip_len);
  const uint16_t sport = port_of(src), dport = port_of(dst);
  memcpy(p + 2 * ip_len, &sport, 2);
  memcpy(p + 2 * ip_len + 2, &dport, 2);
  return sizeof(kV2Signature) + 4 + body;
}

size_t v2_address_length(const sockaddr* src, const sockaddr* dst) {
  if (!same_ip_family(src, dst)) return 0;
  return src->sa_family == AF_INET ? 12 : 36;
}

// "65535" and nothing else: a decimal port without sign, spaces or leading zeros.
bool parse_port(const char* text, size_t len, uint16_t* out) {
  if (len == 0 || len > 5 || (len > 1 && text[0] == '0')) return false;
  uint32_t v = 0;
  for (size_t i = 0; i < len; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    v = v * 10 + static_cast<uint32_t>(text[i] - '0');
  }
  if (v > 65535) return false;
  *out = static_cast<uint16_t>(v);
  return true;
}

bool set_address(int family, const char* text, size_t len, uint16_t port, sockaddr_storage* out) {
  char ip[INET6_ADDRSTRLEN];
  if (len == 0 || len >= sizeof(ip)) return false;
  memcpy(ip, text, len);
  ip[len] = '\0';
  *out = {};
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(out);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    return inet_pton(AF_INET, ip, &in->sin_addr) == 1;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  return inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1;
}

// "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n", "PROXY TCP6 ...", "PROXY UNKNOWN[ anything]\r\n".
ParseResult parse_v1(const char* data, size_t len, ParsedProxyHeader* out) {
  constexpr size_t kMaxV1 = 107;  // the spec's bound, CRLF included
  const char* end = static_cast<const char*>(memchr(data, '\n', std::min(len, kMaxV1)));
  if (end == nullptr) return len >= kMaxV1 ? ParseResult::kInvalid : ParseResult::kIncomplete;
  if (end == data || end[-1] != '\r') return ParseResult::kInvalid;
  const size_t line_len = static_cast<size_t>(end - data) - 1;  // without CRLF
  // Split on single spaces.
  const char* fields[7];
  size_t lens[7];
  size_t n = 0;
  const char* p = data;
  const char* line_end = data + line_len;
  while (p <= line_end && n < 7) {
    const char* space = static_cast<const char*>(memchr(p, ' ', static_cast<size_t>(line_end - p)));
    const char* field_end = space != nullptr ? space : line_end;
    fields[n] = p;
    lens[n] = static_cast<size_t>(field_end - p);
    ++n;
    if (space == nullptr) break;
    p = space + 1;
  }
  const auto is = [&](size_t i, const char* word) {
    return lens[i] == strlen(word) && memcmp(fields[i], word, lens[i]) == 0;
  };
  if (n < 2 || !is(0, "PROXY")) return ParseResult::kInvalid;
  out->length = line_len + 2;
  if (is(1, "UNKNOWN")) {  // the sender did not know; the rest of the line is to be ignored
    out->has_addresses = false;
    return ParseResult::kComplete;
  }
  const int family = is(1, "TCP4") ? AF_INET : is(1, "TCP6") ? AF_INET6 : AF_UNSPEC;
  uint16_t sport = 0, dport = 0;
  if (family == AF_UNSPEC || n != 6 || !parse_port(fields[4], lens[4], &sport) ||
      !parse_port(fields[5], lens[5], &dport) ||
      !set_address(family, fields[2], lens[2], sport, &out->src) ||
      !set_address(family, fields[3], lens[3], dport, &out->dst)) {
    return ParseResult::kInvalid;
  }
  out->has_addresses = true;
  return ParseResult::kComplete;
}

ParseResult parse_v2(const unsigned char* data, size_t len, ParsedProxyHeader* out, ProxyTlvs* tlvs) {
  if (len < 16) return ParseResult::kIncomplete;
  const unsigned version = data[12] >> 4, command = data[12] & 0x0F;
  if (version != 2 || command > 1) return ParseResult::kInvalid;
  const size_t body = (size_t{data[14]} << 8) | data[15];
  if (16 + body > kMaxAcceptedProxyHeader) return ParseResult::kInvalid;
  if (len < 16 + body) return ParseResult::kIncomplete;
  out->length = 16 + body;
  out->has_addresses = false;
  // LOCAL (health checks of the sender itself), and families other than TCP over IPv4/IPv6
  // (UDP, Unix sockets, unspecified): valid, but the connection's own addresses stand.
  if (command == 0) return ParseResult::kComplete;
  const unsigned family = data[13];
  const unsigned char* a = data + 16;
  if (family == 0x11) {
    if (body < 12) return ParseResult::kInvalid;
    auto* src = reinterpret_cast<sockaddr_in*>(&out->src);
    auto* dst = reinterpret_cast<sockaddr_in*>(&out->dst);
    *src = {};
    *dst = {};
    src->sin_family = dst->sin_family = AF_INET;
    memcpy(&src->sin_addr, a, 4);
    memcpy(&dst->sin_addr, a + 4, 4);
    memcpy(&src->sin_port, a + 8, 2);
    memcpy(&dst->sin_port, a + 10, 2);
    out->has_addresses = true;
    if (!decode_proxy_tlvs(a + 12, body - 12, tlvs)) return ParseResult::kInvalid;
  } else if (family == 0x21) {
    if (body < 36) return ParseResult::kInvalid;
    auto* src = reinterpret_cast<sockaddr_in6*>(&out->src);
    auto* dst = reinterpret_cast<sockaddr_in6*>(&out->dst);
    *src = {};
    *dst = {};
    src->sin6_family = dst->sin6_family = AF_INET6;
    memcpy(&src->sin6_addr, a, 16);
    memcpy(&dst->sin6_addr, a + 16, 16);
    memcpy(&src->sin6_port, a + 32, 2);
    memcpy(&dst->sin6_port, a + 34, 2);
    out->has_addresses = true;
    if (!decode_proxy_tlvs(a + 36, body - 36, tlvs)) return ParseResult::kInvalid;
  }
  return ParseResult::kComplete;
}

}  // namespace

ParseResult parse_proxy_header(const char* data, size_t len, ParsedProxyHeader* out, ProxyTlvs* tlvs) {
  if (tlvs != nullptr) *tlvs = ProxyTlvs{};
  static constexpr char kV1Prefix[] = "PROXY ";
  const size_t v1_prefix = sizeof(kV1Prefix) - 1;
  if (memcmp(data, kV1Prefix, std::min(len, v1_prefix)) == 0) {
    return len < v1_prefix ? ParseResult::kIncomplete : parse_v1(data, len, out);
  }
  if (memcmp(data, kV2Signature, std::min(len, sizeof(kV2Signature))) == 0) {
    return parse_v2(reinterpret_cast<const unsigned char*>(data), len, out, tlvs);
  }
  return ParseResult::kInvalid;
}

size_t write_proxy_header_local(ProxyProtocol version, char (&out)[kMaxProxyHeader]) {
  switch (version) {
    case ProxyProtocol::kV1: return write_v1_unknown(out);
    case ProxyProtocol::kV2: return write_v2_local(out);
    case ProxyProtocol::kNone: break;
  }
  return 0;
}

size_t write_proxy_header(ProxyProtocol version, const sockaddr* src, const sockaddr* dst,
                          char (&out)[kMaxProxyHeader]) {
  switch (version) {
    case ProxyProtocol::kV1: return write_v1(src, dst, out);
    case ProxyProtocol::kV2: return write_v2(src, dst, out);
    case ProxyProtocol::kNone: break;
  }
  return 0;
}

}  // namespace ringlb

namespace ringlb {

size_t proxy_v2_size(const sockaddr* src, const sockaddr* dst, const ProxyTlvs& tlvs) {
  const size_t addresses = v2_address_length(src, dst);
  if (addresses == 0) return sizeof(kV2Signature) + 4;  // LOCAL
  const size_t body = addresses + proxy_tlvs_size(tlvs);
  return body > 0xFFFF ? 0 : sizeof(kV2Signature) + 4 + body;
}

size_t write_proxy_v2(const sockaddr* src, const sockaddr* dst, const ProxyTlvs& tlvs, char* out, size_t cap) {
  const size_t total = proxy_v2_size(src, dst, tlvs);
  if (total == 0 || cap < total) return 0;
  char head[kMaxProxyHeader];
  const size_t n = write_v2(src, dst, head);  // the LOCAL form for other families
  memcpy(out, head, n);
  if (v2_address_length(src, dst) == 0) return n;
  auto* p = reinterpret_cast<unsigned char*>(out);
  const size_t written = encode_proxy_tlvs(tlvs, p + n, cap - n);
  if (written != total - n) return 0;
  const size_t body = total - 16;
  p[14] = static_cast<unsigned char>(body >> 8);
  p[15] = static_cast<unsigned char>(body & 0xFF);
  return total;
}

}  // namespace ringlb
