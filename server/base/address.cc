#include "server/base/address.h"

#include <arpa/inet.h>
#include <sys/un.h>

#include <cstddef>

#include <charconv>
#include <cstring>

namespace ringlb {

uint16_t Address::port() const {
  if (family() == AF_UNIX) return 0;
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
}

void Address::set_port(uint16_t port) {
  if (family() == AF_UNIX) return;
  if (family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in*>(&storage)->sin_port = htons(port);
  }
}

std::string Address::to_string() const {
  if (family() == AF_UNIX) {
    return "unix:" + std::string(reinterpret_cast<const sockaddr_un*>(&storage)->sun_path);
  }
  char host[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, host,
              sizeof(host));
    return "[" + std::string(host) + "]:" + std::to_string(port());
  }
  inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, host, sizeof(host));
  return std::string(host) + ":" + std::to_string(port());
}

bool parse_address(std::string_view text, Address* out, std::string* error) {
  std::string_view host, port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      *error = "expected [IPv6]:PORT";
      return false;
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      *error = "expected ADDR:PORT";
      return false;
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      *error = "IPv6 addresses go in brackets: [ADDR]:PORT";
      return false;
    }
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size()) {
    *error = "port '" + std::string(port_text) + "' is not a number";
    return false;
  }
  if (port > 65535) {
    *error = "port " + std::string(port_text) + " is out of range (0-65535)";
    return false;
  }
  Address addr;
  const std::string host_str(host);
  if (host == "localhost") {
    auto* sin = reinterpret_cast<sockaddr_in*>(&addr.storage);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.length = sizeof(sockaddr_in);
  } else if (text.front() == '[') {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&addr.storage);
    if (inet_pton(AF_INET6, host_str.c_str(), &sin6->sin6_addr) != 1) {
      *error = "'" + host_str + "' is not an IPv6 address";
      return false;
    }
    sin6->sin6_family = AF_INET6;
    addr.length = sizeof(sockaddr_in6);
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&addr.storage);
    if (inet_pton(AF_INET, host_str.c_str(), &sin->sin_addr) != 1) {
      *error = "'" + host_str + "' is not an IPv4 address";
      return false;
    }
    sin->sin_family = AF_INET;
    addr.length = sizeof(sockaddr_in);
  }
  addr.set_port(static_cast<uint16_t>(port));
  *out = addr;
  return true;
}

bool parse_backend_address(std::string_view text, Address* out, std::string* error) {
  constexpr std::string_view kUnix = "unix:";
  if (text.substr(0, kUnix.size()) != kUnix) return parse_address(text, out, error);
  const std::string_view path = text.substr(kUnix.size());
  Address addr;
  auto* sun = reinterpret_cast<sockaddr_un*>(&addr.storage);
  if (path.empty() || path.front() != '/') {
    *error = "a Unix socket path must be absolute";
    return false;
  }
  if (path.size() >= sizeof(sun->sun_path)) {
    *error = "a Unix socket path is at most " + std::to_string(sizeof(sun->sun_path) - 1) + " bytes";
    return false;
  }
  sun->sun_family = AF_UNIX;
  memcpy(sun->sun_path, path.data(), path.size());
  addr.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  *out = addr;
  return true;
}

Address address_from_sockaddr(const sockaddr* sa, socklen_t len) {
  Address addr;
  if (len > sizeof(addr.storage)) len = sizeof(addr.storage);
  memcpy(&addr.storage, sa, len);
  addr.length = len;
  return addr;
}

}  // namespace ringlb
