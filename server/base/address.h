// Socket addresses as written on the command line: "1.2.3.4:80", "[::1]:80", and for backends
// also "unix:/run/app.sock".
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <string_view>

namespace ringlb {

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;

  int family() const { return storage.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  uint16_t port() const;  // 0 for a Unix socket
  void set_port(uint16_t port);
  // "1.2.3.4:80" / "[::1]:80" / "unix:/run/app.sock".
  std::string to_string() const;
};

// Parses ADDR:PORT with a numeric IPv4 or bracketed IPv6 address. On failure returns false and
// sets *error to what is wrong (without naming the flag; the caller adds that).
bool parse_address(std::string_view text, Address* out, std::string* error);

// A backend: ADDR:PORT as above, or unix:PATH for a Unix stream socket (an absolute path that
// fits sockaddr_un, 107 bytes).
bool parse_backend_address(std::string_view text, Address* out, std::string* error);

Address address_from_sockaddr(const sockaddr* sa, socklen_t len);

}  // namespace ringlb
