#include "server/config/setters.h"

namespace ringlb::setters {

Status get_duration(const Value& v, Zero zero, Millis* out) {
  std::string text;
  RINGLB_RETURN_IF_ERROR(v.get_string(&text, "a duration such as \"5s\""));
  RINGLB_RETURN_IF_ERROR(parse_duration(text, out));
  if (zero == Zero::kRefused && out->count() == 0) return Status::error(kAboveZero);
  return {};
}

Status set_duration(const Value& v, Zero zero, Millis* field) { return get_duration(v, zero, field); }

Status set_optional_duration(const Value& v, Zero zero, std::optional<Millis>* field) {
  Millis d{};
  RINGLB_RETURN_IF_ERROR(get_duration(v, zero, &d));
  *field = d;
  return {};
}

Status get_idle_timeout(const Value& v, Millis* out) {
  Status s = get_duration(v, Zero::kRefused, out);
  if (s.message() == kAboveZero) {
    return Status::error(std::string(kAboveZero) + " (0 does not turn it off: give connections that may stay idle "
                         "a long one, up to \"576h\")");
  }
  return s;
}

Status set_rate(const Value& v, uint64_t* field) {
  std::string text;
  uint64_t n = 0;
  // A string (every flag's value is one), or a TOML integer.
  if (v.get_string(&text, kRateSyntax).ok()) {
    RINGLB_RETURN_IF_ERROR(parse_rate(text, &n));
  } else if (!v.get_uint(0, limits::kMaxRate, &n).ok()) {
    return Status::error(std::string("expected ") + kRateSyntax + ", at most 1024GiB");
  } else if (n == 0) {
    return Status::error("must be above zero (leave the key out for no limit)");
  }
  *field = n;
  return {};
}

Status set_access_log_interval(const Value& v, Millis* field) {
  Millis d{};
  RINGLB_RETURN_IF_ERROR(get_duration(v, Zero::kOff, &d));
  if (d.count() != 0 && d < limits::kMinAccessLogInterval) {
    return Status::error("must be at least 1s (or 0s: off)");
  }
  *field = d;
  return {};
}

Status set_bool(const Value& v, bool* field) { return v.get_bool(field); }

Status set_cidrs(const Value& v, std::vector<Cidr>* field) {
  std::vector<std::string> texts;
  RINGLB_RETURN_IF_ERROR(v.get_strings(&texts));
  std::vector<Cidr> list;
  for (const std::string& text : texts) {
    Cidr cidr;
    std::string error;
    if (!parse_cidr(text, &cidr, &error)) return Status::error("'" + text + "': " + error);
    list.push_back(cidr);
  }
  *field = list;
  return {};
}

Status set_path(const Value& v, const char* what, std::string* field) {
  std::string text;
  RINGLB_RETURN_IF_ERROR(v.get_string(&text, what));
  if (text.empty()) return Status::error(std::string("needs ") + what);
  *field = text;
  return {};
}

Status check_unix_path(const std::string& path) {
  if (path.size() <= limits::kMaxUnixPath) return {};
  return Status::error("a Unix socket path is at most " + std::to_string(limits::kMaxUnixPath) +
                       " bytes (this one has " + std::to_string(path.size()) + ")");
}

Status get_word(const Value& v, const char* expected, std::initializer_list<const char*> words, std::string* out) {
  std::string text;
  RINGLB_RETURN_IF_ERROR(v.get_string(&text, expected));
  for (const char* word : words) {
    if (text == word) {
      *out = text;
      return {};
    }
  }
  return Status::error(std::string("expected ") + expected);
}

Status set_scheduling(const Value& v, bool* batch) {
  std::string text;
  RINGLB_RETURN_IF_ERROR(get_word(v, "batch or normal", {"batch", "normal"}, &text));
  *batch = text == "batch";
  return {};
}

Status set_check(const Value& v, std::string_view key, health::CheckSettings* s) {
  uint64_t n = 0;
  if (key == "check-port") {
    RINGLB_RETURN_IF_ERROR(v.get_uint(1, 65535, &n));
    s->port = static_cast<uint16_t>(n);
    return {};
  }
  if (key == "check-expect-within") {
    RINGLB_RETURN_IF_ERROR(v.get_uint(1, health::kMaxReplyWindow, &n));
    s->expect_within = static_cast<uint32_t>(n);
    return {};
  }
  std::string text, why;
  RINGLB_RETURN_IF_ERROR(v.get_string(&text, "a string"));
  if (!health::set_check_text(key, text, s, &why)) return Status::error(why);
  return {};
}

Status check_endpoint(const std::string& url) {
  const size_t scheme = url.find("://");
  const std::string kind = scheme == std::string::npos ? "" : url.substr(0, scheme);
  const std::string rest = scheme == std::string::npos ? "" : url.substr(scheme + 3);
  const size_t colon = rest.rfind(':');
  uint64_t port = 0;
  if ((kind != "http" && kind != "https") || colon == std::string::npos || colon == 0 ||
      !parse_uint(rest.substr(colon + 1), 1, 65535, &port) || rest.find('/') != std::string::npos) {
    return Status::error("'" + url + "': expected http://HOST:PORT or https://HOST:PORT");
  }
  return {};
}

Status parse_nameserver(const std::string& text, Address* out) {
  // A bare IP means port 53 (resolv.conf's form); parse_address wants one.
  const bool v6 = text.find(':') != text.rfind(':') && text.front() != '[';
  const bool bare = v6 || text.find(':') == std::string::npos;
  const std::string full = !bare ? text : v6 ? "[" + text + "]:53" : text + ":53";
  std::string error;
  if (!parse_address(full, out, &error) || out->port() == 0) {
    return Status::error("'" + text + "': expected IP or IP:PORT ([IPv6]:PORT)");
  }
  return {};
}

}  // namespace ringlb::setters
