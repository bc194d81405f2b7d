// The access log's line format (--access-log-format), apart from the log itself so that the
// configuration can name it without depending on the writer.
#pragma once

#include <string>

namespace ringlb {

enum class AccessLogFormat {
  kLogfmt,  // key=value after the time (the default)
  kJson,    // one JSON object per line
};

// "logfmt" or "json"; false on anything else.
inline bool parse_access_log_format(const std::string& text, AccessLogFormat* out) {
  if (text == "logfmt") {
    *out = AccessLogFormat::kLogfmt;
  } else if (text == "json") {
    *out = AccessLogFormat::kJson;
  } else {
    return false;
  }
  return true;
}

}  // namespace ringlb
