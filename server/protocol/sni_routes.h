// SNI routing: the cluster a TLS connection goes to, by the server name its ClientHello asked for
// (read_client_hello in client_hello.h). Pure: the config parser builds the table, a worker
// matches names against it.
//
// A pattern is an exact name ("www.example.com") or a wildcard "*.example.com", which matches
// every name under example.com at any depth (foo.example.com, a.b.example.com), not example.com
// itself: Envoy's server_names and nginx's server_name "*.example.com" convention. (A TLS
// certificate's wildcard covers one label only; a route is not a certificate.) An exact name
// beats any wildcard, and among wildcards the longest suffix wins, so "*.eu.example.com" beats
// "*.example.com" for a.eu.example.com. Names and patterns compare case-insensitively, and one
// trailing dot is ignored on either.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace ringlb::protocol {

// A default that routes nowhere: the caller closes the connection.
inline constexpr size_t kNoCluster = SIZE_MAX;

// Why `pattern` cannot be a route pattern, for the config parser to report; "" when it can.
std::string sni_pattern_error(std::string_view pattern);

class SniRoutes {
 public:
  // Routes every name, and connections without one, to `default_cluster` until routes are added.
  explicit SniRoutes(size_t default_cluster = kNoCluster) : default_(default_cluster) {}

  // Routes names matching `pattern` to `cluster`. Returns "" or, for the config parser, why not:
  // sni_pattern_error's reason, or the pattern is already routed (case and trailing dot aside).
  std::string add(std::string_view pattern, size_t cluster);

  // The cluster for `server_name`; the default when it is empty (no SNI), not a valid host name,
  // or matches no pattern.
  size_t match(std::string_view server_name) const;

  size_t default_cluster() const { return default_; }
  size_t size() const { return exact_.size() + wildcard_.size(); }

 private:
  size_t default_;
  std::map<std::string, size_t, std::less<>> exact_;     // "www.example.com"
  std::map<std::string, size_t, std::less<>> wildcard_;  // "example.com" for "*.example.com"
};

}  // namespace ringlb::protocol
