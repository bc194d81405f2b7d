#include "server/health/reply.h"

namespace ringlb::health {

int parse_status_line(std::string_view reply) {
  // "HTTP/1.x SSS" then a space (with a reason) or the line's end. Decided at the first byte
  // that cannot fit, so garbage fails at once instead of waiting for a line end.
  static constexpr std::string_view kPrefix = "HTTP/1.";
  for (size_t i = 0; i < kPrefix.size() && i < reply.size(); ++i) {
    if (reply[i] != kPrefix[i]) return -1;
  }
  if (reply.size() < 13) return 0;
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!digit(reply[7]) || reply[8] != ' ' || !digit(reply[9]) || !digit(reply[10]) || !digit(reply[11]) ||
      reply[9] == '0') {
    return -1;
  }
  if (reply[12] != ' ' && reply[12] != '\r') return -1;
  return (reply[9] - '0') * 100 + (reply[10] - '0') * 10 + (reply[11] - '0');
}

Judgement judge_http(std::string_view reply, bool done, const CheckSpec& spec) {
  const int status = parse_status_line(reply);
  if (status < 0 || (status == 0 && done)) {
    return {Verdict::kBadResponse, reply.empty() ? "no reply to " + spec.describe()
                                                 : "not an HTTP reply to " + spec.describe() + ": \"" +
                                                       printable(reply, 32) + "\""};
  }
  if (status == 0) return {};
  if (!status_allowed(spec.status, status)) {
    return {Verdict::kBadStatus, "HTTP " + std::to_string(status) + " from " + spec.describe()};
  }
  if (spec.body.empty()) return {Verdict::kOk, {}};
  const size_t head_end = reply.find("\r\n\r\n");
  if (head_end != std::string_view::npos && reply.find(spec.body, head_end + 4) != std::string_view::npos) {
    return {Verdict::kOk, {}};
  }
  if (!done) return {};
  return {Verdict::kBadResponse, "HTTP " + std::to_string(status) + " from " + spec.describe() +
                                     " without \"" + printable(spec.body, 32) + "\" in its body"};
}

Judgement judge_expect(std::string_view reply, bool done, std::string_view expect, size_t within) {
  const std::string_view window = reply.substr(0, within);
  if (window.find(expect) != std::string_view::npos) return {Verdict::kOk, {}};
  if (!done && reply.size() < within) return {};
  return {Verdict::kBadResponse, "expected \"" + printable(expect, 32) + "\", got \"" +
                                     printable(window, 48) + "\"" + (reply.empty() ? " (nothing)" : "")};
}

Judgement judge_datagram(std::string_view datagram, std::string_view expect, size_t within) {
  if (expect.empty()) return {Verdict::kOk, {}};
  Judgement j = judge_expect(datagram, true, expect, within);
  // The datagram as it came, not only the window: it is all the backend said.
  if (j.verdict != Verdict::kOk) {
    j.reason = "expected \"" + printable(expect, 32) + "\", got \"" + printable(datagram, 48) + "\"" +
               (datagram.empty() ? " (an empty datagram)" : "");
  }
  return j;
}

}  // namespace ringlb::health
