// What an active health check sends and expects, as the config resolves it for one backend. Pure
// data and parsers: no I/O, so the config reader, the snapshot and the unit tests share them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringlb::health {

// tcp: the connect (and a send-proxy LOCAL header). http: one HTTP/1.1 request, Connection:
// close. send-expect: bytes out, a string expected back. tls: the handshake completes. https:
// the handshake, then the http check inside it. udp: one datagram (check-send) over a connected
// UDP socket, and a datagram back (with check-expect in it, if set); ICMP port unreachable fails.
enum class CheckType : uint8_t { kTcp, kHttp, kSendExpect, kTls, kHttps, kUdp };
bool parse_check_type(std::string_view text, CheckType* out);
const char* check_type_name(CheckType type);
inline bool uses_tls(CheckType t) { return t == CheckType::kTls || t == CheckType::kHttps; }
inline bool uses_datagrams(CheckType t) { return t == CheckType::kUdp; }
inline bool uses_http(CheckType t) { return t == CheckType::kHttp || t == CheckType::kHttps; }

// A check's outcome (label result= of ringlb_backend_checks_total).
#define RINGLB_CHECK_RESULTS(X) \
  X(ok)                         \
  X(timeout)                    \
  X(refused)                    \
  X(bad_status)                 \
  X(bad_response)               \
  X(tls_error)

enum class Result : uint8_t {
#define RINGLB_ENUM(name) k_##name,
  RINGLB_CHECK_RESULTS(RINGLB_ENUM)
#undef RINGLB_ENUM
      kCount
};
const char* result_name(Result r);

// Limits: what a check holds per backend stays small (1,024 backends are checked at once).
inline constexpr size_t kMaxSend = 1024;        // check-send, after escapes
inline constexpr size_t kMaxExpect = 256;       // check-expect and check-body
inline constexpr size_t kMaxReplyWindow = 4096; // bytes of a reply a check looks at

struct StatusRange {
  uint16_t low = 200;
  uint16_t high = 399;
  bool operator==(const StatusRange&) const = default;
};
// "200-399", "200,204,300-399": codes 100 to 599, each range low to high. False and *why else.
bool parse_status_ranges(std::string_view text, std::vector<StatusRange>* out, std::string* why);
bool status_allowed(const std::vector<StatusRange>& ranges, int status);

// C-style escapes, for bytes TOML strings cannot hold and for flags: \r \n \t \0 \\ \" \xHH.
// False and *why on an unknown or truncated escape.
bool decode_escapes(std::string_view text, std::string* out, std::string* why);
// The bytes as a log line can show them: printable ASCII as is, the rest escaped.
std::string printable(std::string_view bytes, size_t max = 64);

struct CheckSpec {
  CheckType type = CheckType::kTcp;
  uint16_t port = 0;  // 0: the backend's own port
  std::string method = "GET";
  std::string path = "/";
  std::string host;   // empty: the backend's address as written
  std::vector<StatusRange> status{StatusRange{}};
  std::string body;   // http: a substring the body must contain ("" = any body)
  std::string send;   // send-expect and udp, decoded
  std::string expect;  // send-expect and udp, decoded
  uint32_t expect_within = 0;  // the expect string must be in the reply's first N bytes; 0 = its length
  std::string sni;    // tls/https: the server name sent; "" = none
  bool operator==(const CheckSpec&) const = default;

  // The http request, with `default_host` as Host when host is unset.
  std::string http_request(const std::string& default_host) const;
  // "GET /healthz", for messages.
  std::string describe() const { return method + " " + path; }
  size_t window() const { return expect_within != 0 ? expect_within : expect.size(); }
};

// What one level of the config says (a cluster, or the top level: every cluster's default; a
// backend): unset fields come from the level above.
struct CheckSettings {
  std::optional<CheckType> type;
  std::optional<uint16_t> port;
  std::optional<std::string> method, path, host, body, send, expect, sni;
  std::optional<std::vector<StatusRange>> status;
  std::optional<uint32_t> expect_within;

  // These settings with `over`'s set fields in their place.
  CheckSettings overlaid(const CheckSettings& over) const;
  CheckSpec resolve() const;
};

// Sets the string-valued key `key` ("check", "check-path", ...) from `text`, validating it alone.
// False and *why when the value is bad (an unknown check type, a bad status range, an expect
// string that is too long...). Numeric keys (check-port, check-expect-within) are set directly.
bool set_check_text(std::string_view key, const std::string& text, CheckSettings* out, std::string* why);

// A resolved check that cannot run as configured: the key at fault and why; nullopt when fine.
struct CheckProblem {
  const char* key;
  std::string value;
  std::string why;
};
std::optional<CheckProblem> validate(const CheckSpec& spec);

}  // namespace ringlb::health
