// How the settings table (settings_table.cc) reads a value into its field: whole numbers within
// limits, durations with their rule for 0, booleans, CIDR lists, paths and the words of a
// choice. Each reports a bad value as a Status whose message follows the key's name ("expected
// a whole number from 1 to 256"). Internal to server/config.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/base/acl.h"
#include "server/base/error.h"
#include "server/config/config.h"
#include "server/config/settings.h"

namespace ringlb::setters {

template <typename T>
Status set_uint(const Value& v, uint64_t min, uint64_t max, T* field) {
  uint64_t n = 0;
  RINGLB_RETURN_IF_ERROR(v.get_uint(min, max, &n));
  *field = static_cast<T>(n);
  return {};
}

// What a duration of 0 means: the one rule for every duration (README, ringlb.toml(5)). A
// duration that times something that may be absent takes 0 for "off" (no maximum duration, no
// health checks, no slow start, no queueing, no drain, no hold); any other must be above zero,
// and 0 is refused rather than taken for a timeout that fires at once.
enum class Zero { kOff, kRefused };

Status get_duration(const Value& v, Zero zero, Millis* out);
Status set_duration(const Value& v, Zero zero, Millis* field);
Status set_optional_duration(const Value& v, Zero zero, std::optional<Millis>* field);
// idle-timeout: Zero::kRefused, and the refusal says what to write instead (a connection idle
// for ever would hold its slot for ever, so there is no "off").
Status get_idle_timeout(const Value& v, Millis* out);

// download-rate, upload-rate: a whole number of bytes per second, or a string with a unit
// (config.h: parse_rate). 0, a negative number and an unknown unit are refused.
Status set_rate(const Value& v, uint64_t* field);
// access-log-interval: 0 is off; otherwise at least limits::kMinAccessLogInterval.
Status set_access_log_interval(const Value& v, Millis* field);

Status set_bool(const Value& v, bool* field);
Status set_cidrs(const Value& v, std::vector<Cidr>* field);
// A non-empty string; `what` names it in errors ("a PATH").
Status set_path(const Value& v, const char* what, std::string* field);
// A Unix socket's path must fit sockaddr_un, or bind and connect fail only once running.
Status check_unix_path(const std::string& path);
// One of `words` into *out; `expected` lists them for the error ("batch or normal").
Status get_word(const Value& v, const char* expected, std::initializer_list<const char*> words, std::string* out);
// "batch" (true) or "normal".
Status set_scheduling(const Value& v, bool* batch);
// A check-* key of a cluster (or the top level) or a backend: numbers here, strings validated by
// health::set_check_text (which names the bad value: an unknown type, a bad status range...).
Status set_check(const Value& v, std::string_view key, health::CheckSettings* s);
// An etcd endpoint: http:// or https://, a host and a port, nothing after (the paths are ours).
Status check_endpoint(const std::string& url);
// A [resolvers] nameserver: IP or IP:PORT ([IPv6]:PORT); a bare IP means port 53.
Status parse_nameserver(const std::string& text, Address* out);

}  // namespace ringlb::setters
