#include "server/config/dns_name.h"

#include <cctype>
#include <charconv>

namespace ringlb {
namespace {

bool valid_label(std::string_view label) {
  if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
  for (char ch : label) {
    // '_' too: SRV names need it (_http._tcp), and private zones use it in host names.
    if (!(isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_')) return false;
  }
  return true;
}

// Only digits and dots: meant as an IPv4 address (a bad one, or parse_address would have taken it).
bool looks_numeric(std::string_view host) {
  for (char ch : host) {
    if (!isdigit(static_cast<unsigned char>(ch)) && ch != '.') return false;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out;
  for (char ch : s) out += static_cast<char>(tolower(static_cast<unsigned char>(ch)));
  return out;
}

}  // namespace

bool valid_dns_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return false;
  std::string_view last;
  for (size_t at = 0;;) {
    const size_t dot = name.find('.', at);
    last = name.substr(at, dot == std::string_view::npos ? dot : dot - at);
    if (!valid_label(last)) return false;
    if (dot == std::string_view::npos) break;
    at = dot + 1;
  }
  bool all_digits = true;
  for (char ch : last) all_digits = all_digits && isdigit(static_cast<unsigned char>(ch));
  return !all_digits;
}

Status parse_dns_name(std::string_view text, DnsName* out) {
  *out = DnsName{};
  constexpr std::string_view kSrv = "srv:";
  if (text.substr(0, kSrv.size()) == kSrv) {
    const std::string_view name = text.substr(kSrv.size());
    if (name.find(':') != std::string_view::npos) {
      return Status::error("an SRV name takes no port (its records give each target's): srv:_service._proto.name");
    }
    if (!valid_dns_name(name)) {
      return Status::error("'" + std::string(name) + "' is not a DNS name (srv:_service._proto.name)");
    }
    *out = DnsName{DnsName::Kind::kSrv, lower(name), 0};
    return {};
  }
  const size_t colon = text.rfind(':');
  // "[v6]:port", "unix:..." and colon-less text are addresses (or typos of one).
  if (colon == std::string_view::npos || text.front() == '[' || text.find(':') != colon) return {};
  const std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  if (host.empty() || looks_numeric(host)) return {};
  if (!valid_dns_name(host)) {
    return Status::error("'" + std::string(host) + "' is neither an IP address nor a DNS name");
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
    return Status::error("port '" + std::string(port) + "' must be 1 to 65535");
  }
  *out = DnsName{DnsName::Kind::kHost, lower(host), static_cast<uint16_t>(value)};
  return {};
}

}  // namespace ringlb
