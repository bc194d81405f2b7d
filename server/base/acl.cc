#include "server/base/acl.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <utility>

namespace ringlb {
namespace {

bool prefix_matches(const uint8_t* network, const uint8_t* address, unsigned prefix_len) {
  const unsigned whole = prefix_len / 8, rest = prefix_len % 8;
  if (memcmp(network, address, whole) != 0) return false;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xFF << (8 - rest));
  return (network[whole] & mask) == (address[whole] & mask);
}

bool matches(const Cidr& cidr, int family, const uint8_t* address) {
  return cidr.family == family && prefix_matches(cidr.bytes, address, cidr.prefix_len);
}

bool any_matches(const std::vector<Cidr>& list, int family, const uint8_t* address) {
  for (const Cidr& c : list) {
    if (matches(c, family, address)) return true;
  }
  return false;
}

}  // namespace

bool parse_cidr(const std::string& text, Cidr* out, std::string* error) {
  const size_t slash = text.find('/');
  const std::string ip = text.substr(0, slash);
  Cidr c;
  unsigned max_len = 0;
  if (inet_pton(AF_INET, ip.c_str(), c.bytes) == 1) {
    c.family = AF_INET;
    max_len = 32;
  } else if (inet_pton(AF_INET6, ip.c_str(), c.bytes) == 1) {
    c.family = AF_INET6;
    max_len = 128;
  } else {
    *error = "'" + ip + "' is not an IPv4 or IPv6 address";
    return false;
  }
  c.prefix_len = max_len;
  if (slash != std::string::npos) {
    const std::string len = text.substr(slash + 1);
    unsigned value = 0;
    bool ok = !len.empty() && len.size() <= 3 && (len.size() == 1 || len[0] != '0');
    for (char ch : len) {
      ok = ok && ch >= '0' && ch <= '9';
      value = value * 10 + static_cast<unsigned>(ch - '0');
    }
    if (!ok || value > max_len) {
      *error = "prefix length '" + len + "' must be 0 to " + std::to_string(max_len);
      return false;
    }
    c.prefix_len = value;
  }
  // Host bits set below the prefix are most likely a typo for another network: refuse them.
  Cidr network = c;
  for (unsigned bit = c.prefix_len; bit < max_len; ++bit) {
    network.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
  }
  if (memcmp(network.bytes, c.bytes, sizeof(c.bytes)) != 0) {
    *error = "host bits are set beyond the /" + std::to_string(c.prefix_len) + " prefix";
    return false;
  }
  // An IPv4-mapped block (::ffff:10.0.0.0/104) is the IPv4 block it maps (10.0.0.0/8): peers
  // are matched as IPv4, mapped ones too (Acl::allows), so as IPv6 it would match no one.
  in6_addr mapped;
  memcpy(&mapped, c.bytes, sizeof(mapped));
  if (c.family == AF_INET6 && c.prefix_len >= 96 && IN6_IS_ADDR_V4MAPPED(&mapped)) {
    Cidr v4;
    v4.family = AF_INET;
    memcpy(v4.bytes, c.bytes + 12, 4);
    v4.prefix_len = c.prefix_len - 96;
    c = v4;
  }
  *out = c;
  return true;
}

Acl::Acl(std::vector<Cidr> allow, std::vector<Cidr> deny)
    : allow_(std::move(allow)), deny_(std::move(deny)) {}

bool Acl::allows(const sockaddr* client) const {
  if (empty()) return true;
  int family = client->sa_family;
  const uint8_t* address = nullptr;
  if (family == AF_INET) {
    address = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(client)->sin_addr);
  } else if (family == AF_INET6) {
    const in6_addr& a6 = reinterpret_cast<const sockaddr_in6*>(client)->sin6_addr;
    address = a6.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
      family = AF_INET;
      address += 12;
    }
  } else {
    return allow_.empty();  // no address to match: only a deny-list-only policy lets it in
  }
  if (any_matches(deny_, family, address)) return false;
  return allow_.empty() || any_matches(allow_, family, address);
}

}  // namespace ringlb
