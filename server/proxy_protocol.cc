#include "server/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

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

size_t write_v1(const sockaddr* src, const sockaddr* dst, char (&out)[kMaxProxyHeader]) {
  if (!same_ip_family(src, dst)) {
    static constexpr char kUnknown[] = "PROXY UNKNOWN\r\n";
    memcpy(out, kUnknown, sizeof(kUnknown) - 1);
    return sizeof(kUnknown) - 1;
  }
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
  memcpy(out, kV2Signature, sizeof(kV2Signature));
  unsigned char* p = reinterpret_cast<unsigned char*>(out) + sizeof(kV2Signature);
  if (!same_ip_family(src, dst)) {
    p[0] = 0x20;  // version 2, LOCAL: the receiver keeps the connection's own addresses
    p[1] = 0x00;  // AF_UNSPEC
    p[2] = p[3] = 0;
    return sizeof(kV2Signature) + 4;
  }
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

}  // namespace

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
