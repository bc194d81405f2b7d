#include "server/health/check_spec.h"

#include <charconv>

namespace ringlb::health {
namespace {

bool visible_ascii(std::string_view s) {
  for (unsigned char c : s) {
    if (c <= ' ' || c >= 0x7f) return false;
  }
  return true;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool parse_code(std::string_view s, uint16_t* out) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty() || v < 100 || v > 599) return false;
  *out = static_cast<uint16_t>(v);
  return true;
}

template <typename T>
void take(std::optional<T>* mine, const std::optional<T>& over) {
  if (over) *mine = over;
}

}  // namespace

const char* result_name(Result r) {
  switch (r) {
#define RINGLB_CASE(name) \
  case Result::k_##name:  \
    return #name;
    RINGLB_CHECK_RESULTS(RINGLB_CASE)
#undef RINGLB_CASE
    case Result::kCount:
      break;
  }
  return "?";
}

bool parse_check_type(std::string_view text, CheckType* out) {
  for (CheckType t : {CheckType::kTcp, CheckType::kHttp, CheckType::kSendExpect, CheckType::kTls, CheckType::kHttps,
                      CheckType::kUdp}) {
    if (text == check_type_name(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

const char* check_type_name(CheckType type) {
  switch (type) {
    case CheckType::kTcp: return "tcp";
    case CheckType::kHttp: return "http";
    case CheckType::kSendExpect: return "send-expect";
    case CheckType::kTls: return "tls";
    case CheckType::kHttps: return "https";
    case CheckType::kUdp: return "udp";
  }
  return "?";
}

bool parse_status_ranges(std::string_view text, std::vector<StatusRange>* out, std::string* why) {
  std::vector<StatusRange> ranges;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string_view item = text.substr(pos, comma - pos);
    const size_t dash = item.find('-');
    StatusRange r;
    const bool ok = dash == std::string_view::npos
                        ? parse_code(item, &r.low) && parse_code(item, &r.high)
                        : parse_code(item.substr(0, dash), &r.low) && parse_code(item.substr(dash + 1), &r.high);
    if (!ok || r.low > r.high) {
      *why = "bad status range '" + std::string(item) +
             "': expected codes or ranges from 100 to 599, low to high, such as \"200-399\" or \"200,204\"";
      return false;
    }
    ranges.push_back(r);
    pos = comma + 1;
  }
  *out = std::move(ranges);
  return true;
}

bool status_allowed(const std::vector<StatusRange>& ranges, int status) {
  for (const StatusRange& r : ranges) {
    if (status >= r.low && status <= r.high) return true;
  }
  return false;
}

bool decode_escapes(std::string_view text, std::string* out, std::string* why) {
  std::string s;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      s += text[i];
      continue;
    }
    if (++i == text.size()) {
      *why = "a trailing backslash (write \\\\ for one)";
      return false;
    }
    switch (text[i]) {
      case 'r': s += '\r'; break;
      case 'n': s += '\n'; break;
      case 't': s += '\t'; break;
      case '0': s += '\0'; break;
      case '\\': s += '\\'; break;
      case '"': s += '"'; break;
      case 'x': {
        const int hi = i + 1 < text.size() ? hex_digit(text[i + 1]) : -1;
        const int lo = i + 2 < text.size() ? hex_digit(text[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
          *why = "\\x needs two hex digits";
          return false;
        }
        s += static_cast<char>(hi * 16 + lo);
        i += 2;
        break;
      }
      default:
        *why = std::string("unknown escape \\") + text[i] + " (\\r \\n \\t \\0 \\\\ \\\" \\xHH)";
        return false;
    }
  }
  *out = std::move(s);
  return true;
}

std::string printable(std::string_view bytes, size_t max) {
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < bytes.size() && i < max; ++i) {
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c == '\r') s += "\\r";
    else if (c == '\n') s += "\\n";
    else if (c == '\\' || c == '"') s += std::string("\\") + static_cast<char>(c);
    else if (c >= ' ' && c < 0x7f) s += static_cast<char>(c);
    else s += std::string("\\x") + kHex[c >> 4] + kHex[c & 15];
  }
  if (bytes.size() > max) s += "...";
  return s;
}

std::string CheckSpec::http_request(const std::string& default_host) const {
  return method + " " + path + " HTTP/1.1\r\nHost: " + (host.empty() ? default_host : host) +
         "\r\nConnection: close\r\nUser-Agent: ringlb-health-check\r\nAccept: */*\r\n\r\n";
}

CheckSettings CheckSettings::overlaid(const CheckSettings& over) const {
  CheckSettings s = *this;
  take(&s.type, over.type);
  take(&s.port, over.port);
  take(&s.method, over.method);
  take(&s.path, over.path);
  take(&s.host, over.host);
  take(&s.body, over.body);
  take(&s.send, over.send);
  take(&s.expect, over.expect);
  take(&s.sni, over.sni);
  take(&s.status, over.status);
  take(&s.expect_within, over.expect_within);
  return s;
}

CheckSpec CheckSettings::resolve() const {
  CheckSpec spec;
  spec.type = type.value_or(spec.type);
  spec.port = port.value_or(0);
  spec.method = method.value_or(spec.method);
  spec.path = path.value_or(spec.path);
  spec.host = host.value_or("");
  spec.body = body.value_or("");
  spec.send = send.value_or("");
  spec.expect = expect.value_or("");
  spec.sni = sni.value_or("");
  spec.status = status.value_or(spec.status);
  spec.expect_within = expect_within.value_or(0);
  return spec;
}

bool set_check_text(std::string_view key, const std::string& text, CheckSettings* out, std::string* why) {
  if (key == "check") {
    CheckType t;
    if (!parse_check_type(text, &t)) {
      *why = "unknown check type '" + text + "' (expected tcp, http, https, send-expect, tls or udp)";
      return false;
    }
    out->type = t;
  } else if (key == "check-method") {
    if (text.empty() || text.size() > 16 || text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string::npos) {
      *why = "expected an HTTP method in capitals, such as GET or HEAD";
      return false;
    }
    out->method = text;
  } else if (key == "check-path") {
    if (text.empty() || text[0] != '/' || text.size() > 1024 || !visible_ascii(text)) {
      *why = "expected a path starting with /, at most 1024 visible ASCII characters";
      return false;
    }
    out->path = text;
  } else if (key == "check-host" || key == "check-sni") {
    if (text.empty() || text.size() > 255 || !visible_ascii(text)) {
      *why = "expected a host name of 1 to 255 visible ASCII characters";
      return false;
    }
    (key == "check-host" ? out->host : out->sni) = text;
  } else if (key == "check-status") {
    std::vector<StatusRange> ranges;
    if (!parse_status_ranges(text, &ranges, why)) return false;
    out->status = std::move(ranges);
  } else if (key == "check-body") {
    if (text.empty() || text.size() > kMaxExpect) {
      *why = "expected 1 to " + std::to_string(kMaxExpect) + " bytes (got " + std::to_string(text.size()) + ")";
      return false;
    }
    out->body = text;
  } else if (key == "check-send" || key == "check-expect") {
    std::string bytes;
    if (!decode_escapes(text, &bytes, why)) return false;
    const bool expect = key == "check-expect";
    const size_t max = expect ? kMaxExpect : kMaxSend;
    if ((expect && bytes.empty()) || bytes.size() > max) {
      *why = std::string(expect ? "expect string" : "send string") + " too long or empty: " +
             std::to_string(bytes.size()) + " bytes (1 to " + std::to_string(max) + ")";
      if (!expect && bytes.empty()) *why = "send string is empty (leave it out to send nothing)";
      return false;
    }
    (expect ? out->expect : out->send) = std::move(bytes);
  } else {
    *why = "unknown key";
    return false;
  }
  return true;
}

std::optional<CheckProblem> validate(const CheckSpec& spec) {
  if (spec.type == CheckType::kSendExpect && spec.expect.empty()) {
    return CheckProblem{"check", "send-expect", "a send-expect check needs check-expect"};
  }
  if (spec.type == CheckType::kUdp && spec.send.empty()) {
    return CheckProblem{"check", "udp", "a udp check needs check-send (the datagram it sends)"};
  }
  const bool expects = spec.type == CheckType::kSendExpect || (spec.type == CheckType::kUdp && !spec.expect.empty());
  if (expects && (spec.window() < spec.expect.size() || spec.window() > kMaxReplyWindow)) {
    return CheckProblem{"check-expect-within", std::to_string(spec.expect_within),
                        "must be from the expect string's length (" + std::to_string(spec.expect.size()) +
                            ") to " + std::to_string(kMaxReplyWindow)};
  }
  if (!spec.sni.empty() && !uses_tls(spec.type)) {
    return CheckProblem{"check-sni", spec.sni, "only a tls or https check sends a server name"};
  }
  return std::nullopt;
}

}  // namespace ringlb::health
