// Source-address access control (nginx stream's allow/deny, HAProxy's `tcp-request connection
// reject if { src ... }`): --allow and --deny take CIDR blocks. A client is refused when its
// address is in a --deny block, or when --allow blocks exist and it is in none of them. Pure: no
// sockets, no io_uring.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ringlb {

struct Cidr {
  int family = 0;             // AF_INET or AF_INET6
  uint8_t bytes[16] = {};     // the network, in network byte order (4 used for AF_INET)
  unsigned prefix_len = 0;
};

// "10.0.0.0/8", "192.0.2.7" (a /32), "2001:db8::/32", "::1" (a /128). False and *error on
// anything else, including host bits set beyond the prefix ("10.0.0.1/8"). An IPv4-mapped
// block ("::ffff:10.0.0.0/104") is read as the IPv4 block it maps ("10.0.0.0/8").
bool parse_cidr(const std::string& text, Cidr* out, std::string* error);

class Acl {
 public:
  Acl() = default;
  Acl(std::vector<Cidr> allow, std::vector<Cidr> deny);

  bool empty() const { return allow_.empty() && deny_.empty(); }
  // An IPv4-mapped IPv6 address (a v4 client on a dual-stack listener) is matched as IPv4.
  bool allows(const sockaddr* client) const;

 private:
  std::vector<Cidr> allow_;
  std::vector<Cidr> deny_;
};

}  // namespace ringlb
