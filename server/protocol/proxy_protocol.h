// The PROXY protocol header (HAProxy's spec, versions 1 and 2): written for backends configured
// with send-proxy / send-proxy-v2, so they learn the client's address although the connection
// comes from ringlb, and read on listeners configured with accept-proxy, where ringlb itself
// sits behind another proxy or load balancer. Pure: no sockets, no io_uring.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

#include "server/protocol/proxy_tlvs.h"

namespace ringlb {

enum class ProxyProtocol : uint8_t { kNone = 0, kV1 = 1, kV2 = 2 };

// Longest header written: v1's worst case is 107 bytes plus its CRLF (spec section 2.1); v2 for
// IPv6 is 16 + 36 = 52.
inline constexpr size_t kMaxProxyHeader = 108;

// Writes the header for a TCP connection from `src` (the client) to `dst` (the address it
// connected to) into `out` and returns its length. Both must be AF_INET or both AF_INET6;
// anything else is written as the spec's "unknown" form (v1 "PROXY UNKNOWN", v2 LOCAL), which
// tells the backend to use the connection's own addresses.
size_t write_proxy_header(ProxyProtocol version, const sockaddr* src, const sockaddr* dst,
                          char (&out)[kMaxProxyHeader]);

// The most a v2 header can hold: its length field is 16 bits. A header with TLVs (a TLS client's
// identity, write_proxy_v2) can be longer than kMaxProxyHeader: a client certificate is KiBs.
inline constexpr size_t kMaxProxyV2Header = 16 + 65535;

// Bytes write_proxy_v2 writes for these addresses and TLVs (size the sender's buffer with it);
// 0 when the TLVs do not fit in a v2 header.
size_t proxy_v2_size(const sockaddr* src, const sockaddr* dst, const ProxyTlvs& tlvs);

// A v2 header with TLVs after the addresses (as HAProxy's send-proxy-v2-ssl-cn). Returns its
// length, or 0 when `cap` is below proxy_v2_size(). Addresses that are not both AF_INET or both
// AF_INET6 give the LOCAL form, without TLVs.
size_t write_proxy_v2(const sockaddr* src, const sockaddr* dst, const ProxyTlvs& tlvs, char* out, size_t cap);

// The header a sender puts on connections of its own (health checks): v1 "PROXY UNKNOWN", v2
// LOCAL. It tells the receiver the connection carries no client. Returns its length.
size_t write_proxy_header_local(ProxyProtocol version, char (&out)[kMaxProxyHeader]);

// The longest header accepted: v2 allows 16 + 65535 bytes of TLVs, but the addresses come first
// and a header this long is either an attack or a mistake.
inline constexpr size_t kMaxAcceptedProxyHeader = 4096;

struct ParsedProxyHeader {
  size_t length = 0;           // bytes of the header; what follows is the client's data
  bool has_addresses = false;  // false for v1 UNKNOWN, v2 LOCAL, or a family other than TCP/IP
  sockaddr_storage src{};      // the original client, when has_addresses
  sockaddr_storage dst{};      // the address the client connected to, when has_addresses
};

enum class ParseResult { kComplete, kIncomplete, kInvalid };

// Reads a v1 or v2 header at the start of `data` (the first `len` bytes received). kIncomplete:
// nothing wrong so far, more bytes are needed. kInvalid: not a PROXY header, malformed (a v2
// TLV running past the header too), or longer than kMaxAcceptedProxyHeader. `tlvs`, when given,
// gets the TLS TLVs of a complete v2 header (cleared otherwise).
ParseResult parse_proxy_header(const char* data, size_t len, ParsedProxyHeader* out, ProxyTlvs* tlvs = nullptr);

}  // namespace ringlb
