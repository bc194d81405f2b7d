// The PROXY protocol header (HAProxy's spec, versions 1 and 2) that a backend configured with
// send-proxy / send-proxy-v2 receives before the client's first byte, so it learns the client's
// address although the connection comes from ringlb. Pure: no sockets, no io_uring.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

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

}  // namespace ringlb
