#include "server/protocol/sni_routes.h"

#include "server/protocol/client_hello.h"

namespace ringlb::protocol {
namespace {

constexpr std::string_view kWildcard = "*.";

// The form names are compared in: lowercase, without the one trailing dot of an absolute name.
std::string normalized(std::string_view name) {
  std::string out(name);
  if (!out.empty() && out.back() == '.') out.pop_back();
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string quoted(std::string_view pattern) {
  return "SNI pattern \"" + std::string(pattern) + "\"";
}

}  // namespace

std::string sni_pattern_error(std::string_view pattern) {
  if (pattern.empty()) return "an empty SNI pattern";
  const bool wildcard = pattern.starts_with(kWildcard);
  const std::string_view name = wildcard ? pattern.substr(kWildcard.size()) : pattern;
  if (name.find('*') != std::string_view::npos) {
    return quoted(pattern) + ": '*' may only be the whole first label, as in \"*.example.com\"";
  }
  if (!is_valid_server_name(normalized(name))) {
    return quoted(pattern) +
           ": not a host name (letters, digits, '-' and '_' in non-empty labels between dots, "
           "at most 255 bytes)";
  }
  return "";
}

std::string SniRoutes::add(std::string_view pattern, size_t cluster) {
  if (std::string error = sni_pattern_error(pattern); !error.empty()) return error;
  const bool wildcard = pattern.starts_with(kWildcard);
  auto& table = wildcard ? wildcard_ : exact_;
  const auto [it, added] =
      table.emplace(normalized(wildcard ? pattern.substr(kWildcard.size()) : pattern), cluster);
  if (!added) return quoted(pattern) + ": routed twice";
  return "";
}

size_t SniRoutes::match(std::string_view server_name) const {
  const std::string name = normalized(server_name);
  if (!is_valid_server_name(name)) return default_;
  if (const auto it = exact_.find(name); it != exact_.end()) return it->second;
  // The text after each dot is a suffix "*.suffix" may cover, longest first. A valid name has a
  // non-empty label before every dot, so "*.example.com" never matches example.com itself.
  for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1)) {
    const std::string_view suffix = std::string_view(name).substr(dot + 1);
    if (const auto it = wildcard_.find(suffix); it != wildcard_.end()) return it->second;
  }
  return default_;
}

}  // namespace ringlb::protocol
