// The level of ringlb's stderr lines (--log-level), apart from the logger so that the
// configuration can name it without depending on the writer.
#pragma once

#include <string>

namespace ringlb {

// The sd-daemon(3) priorities: the value is the <N> prefix journald reads.
enum class LogLevel {
  kError = 3,
  kWarning = 4,
  kInfo = 6,
  kDebug = 7,
};

// "error", "warning", "info" or "debug"; false on anything else.
inline bool parse_log_level(const std::string& text, LogLevel* out) {
  if (text == "error") {
    *out = LogLevel::kError;
  } else if (text == "warning") {
    *out = LogLevel::kWarning;
  } else if (text == "info") {
    *out = LogLevel::kInfo;
  } else if (text == "debug") {
    *out = LogLevel::kDebug;
  } else {
    return false;
  }
  return true;
}

}  // namespace ringlb
