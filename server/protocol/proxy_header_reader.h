// Reads a PROXY protocol header off a client socket without taking any byte behind it.
//
// Each step looks at what has arrived with a MSG_PEEK recv, and then consumes header bytes only:
// the client's first data stays in the kernel's socket buffer (TCP flow control bounds it), not
// in a pool buffer, through the backend's connect retries and the maxconn queue. So a burst of
// accept-proxy clients during a backend outage cannot drain the pool and stall connections that
// are already proxying. Pure: the worker does the two recvs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "server/protocol/proxy_protocol.h"

namespace ringlb {

class ProxyHeaderReader {
 public:
  enum class Next : uint8_t {
    kMore,      // consume `consume` bytes (all header), then peek again for the rest
    kComplete,  // consume `consume` bytes: the header ends there; *out is filled in
    kInvalid,   // not a PROXY header, malformed, or over kMaxAcceptedProxyHeader
  };
  struct Step {
    Next next = Next::kInvalid;
    uint32_t consume = 0;
  };

  // `peeked` holds the `len` (> 0) bytes the socket has now, not yet consumed. `tlvs`, when
  // given, gets a complete v2 header's TLS TLVs.
  Step on_peek(const char* peeked, size_t len, ParsedProxyHeader* out, ProxyTlvs* tlvs = nullptr);

  // The most the next peek needs to see: a header never exceeds kMaxAcceptedProxyHeader.
  size_t peek_limit() const { return kMaxAcceptedProxyHeader - partial_.size(); }
  // Header bytes consumed so far by kMore steps (a header arriving in pieces).
  size_t consumed() const { return partial_.size(); }

 private:
  std::string partial_;
};

}  // namespace ringlb
