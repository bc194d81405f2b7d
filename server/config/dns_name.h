// A backend written as a name to resolve rather than an address: "host:port" (every A and AAAA
// record of host, at port) or "srv:_service._proto.name" (the SRV records' targets, ports,
// weights and priorities). Syntax only: server/discovery/dns_resolver resolves them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "server/base/error.h"

namespace ringlb {

struct DnsName {
  enum class Kind : uint8_t { kNone, kHost, kSrv };
  Kind kind = Kind::kNone;
  std::string host;   // lower case, as queried (a trailing '.' kept: the name is then absolute)
  uint16_t port = 0;  // kHost only; SRV records carry their own
  bool operator==(const DnsName& o) const { return kind == o.kind && host == o.host && port == o.port; }
};

// A DNS name: labels of 1 to 63 of A-Z a-z 0-9 - _ (no '-' at either end), 253 bytes at most,
// an optional trailing '.', and a last label that is not all digits (so "10.0.0.300" is a bad
// address, not a name).
bool valid_dns_name(std::string_view name);

// "host:port" or "srv:NAME" into *out. An error says why `text`, meant as a name, is not one;
// text that looks like an address instead is no error but leaves out->kind kNone, so that the
// caller keeps the address parser's message.
Status parse_dns_name(std::string_view text, DnsName* out);

}  // namespace ringlb
