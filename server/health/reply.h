// Judging a check's reply from the bytes received so far: pure functions, called after every
// recv, so a check ends as soon as its reply decides it (an HTTP status needs no body).
#pragma once

#include <string>
#include <string_view>

#include "server/health/check_spec.h"

namespace ringlb::health {

// The status code of an HTTP/1.x status line at the start of `reply` ("HTTP/1.1 503 ..."):
// 100 to 999; 0 when the line is not whole yet; -1 when it is not an HTTP/1 status line.
int parse_status_line(std::string_view reply);

enum class Verdict : uint8_t { kMore, kOk, kBadStatus, kBadResponse };

struct Judgement {
  Verdict verdict = Verdict::kMore;
  std::string reason;  // why it failed, for the log line and `ringlb ctl backends`
};

// An http check's reply. `done`: nothing more will come (EOF, or the window is full).
Judgement judge_http(std::string_view reply, bool done, const CheckSpec& spec);

// A send-expect reply: `expect` must be within the first `within` bytes.
Judgement judge_expect(std::string_view reply, bool done, std::string_view expect, size_t within);

// A udp check's reply, one whole datagram (up to kMaxReplyWindow bytes of it): any datagram when
// the check expects nothing, else one with `expect` in its first `within` bytes. Never kMore.
Judgement judge_datagram(std::string_view datagram, std::string_view expect, size_t within);

}  // namespace ringlb::health
