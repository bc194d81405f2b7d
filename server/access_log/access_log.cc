#include "server/access_log/access_log.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string_view>

#include "server/base/address.h"
#include "server/base/log.h"

namespace ringlb {
namespace {

// RFC 3339 UTC with microseconds: 2026-11-22T05:38:10.123456Z.
void append_time(int64_t unix_us, std::string* out) {
  const time_t secs = static_cast<time_t>(unix_us / 1'000'000);
  tm utc{};
  gmtime_r(&secs, &utc);
  char text[64];
  snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", utc.tm_year + 1900,
           utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
           static_cast<int>(unix_us % 1'000'000));
  out->append(text);
}

// The length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF).
size_t utf8_sequence(const unsigned char* s, size_t n) {
  const unsigned char c = s[0];
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // the bounds of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong below U+0800
    if (c == 0xED) hi = 0x9F;  // U+D800..U+DFFF, the surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // overlong below U+10000
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;  // a continuation byte, 0xC0/0xC1 (overlong) or 0xF5..0xFF
  }
  if (n < len || s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; ++i) {
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  }
  return len;
}

// `text` as a JSON string, quotes included.
void append_json_string(std::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
      ++i;
    } else if (c < 0x20 || c == 0x7F) {
      out->append("\\u00");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 0xF]);
      ++i;
    } else if (c < 0x80) {
      out->push_back(static_cast<char>(c));
      ++i;
    } else if (const size_t len = utf8_sequence(s + i, n - i); len > 0) {
      out->append(text.substr(i, len));
      i += len;
    } else {
      out->append("\\ufffd");  // one replacement character per byte that fits no sequence
      ++i;
    }
  }
  out->push_back('"');
}

std::string address_text(const sockaddr* sa) {
  const socklen_t len = sa->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  return address_from_sockaddr(sa, len).to_string();
}

bool has_address(const sockaddr* sa) {
  return sa != nullptr && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6);
}

void append_address(const sockaddr* sa, std::string* out) {
  out->append(has_address(sa) ? address_text(sa) : std::string("-"));
}

// An address as a JSON string, or null.
void append_json_address(const sockaddr* sa, std::string* out) {
  if (has_address(sa)) {
    append_json_string(address_text(sa), out);
  } else {
    out->append("null");
  }
}

// A name in logfmt: bare when it is plain, otherwise quoted (with JSON's escapes), "-" if null.
void append_logfmt_name(const std::string* name, std::string* out) {
  if (name == nullptr) {
    out->push_back('-');
    return;
  }
  bool plain = !name->empty() && *name != "-";
  for (const char ch : *name) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7F || c == '"' || c == '=' || c == '\\') plain = false;
  }
  if (plain) {
    out->append(*name);
  } else {
    append_json_string(*name, out);
  }
}

void append_json_name(const std::string* name, std::string* out) {
  if (name != nullptr) {
    append_json_string(*name, out);
  } else {
    out->append("null");
  }
}

// write() until all of `data` is out; 0 or -errno.
int write_fully(int fd, const char* data, size_t len) {
  while (len > 0) {
    const ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

void append_access_line(const AccessRecord& r, std::string* out) {
  char text[128];
  append_time(r.start_unix_us, out);
  out->append(" client=");
  append_address(r.client, out);
  out->append(" listener=");
  append_address(r.listener, out);
  out->append(" listener_name=");
  append_logfmt_name(r.listener_name, out);
  out->append(" cluster=");
  append_logfmt_name(r.cluster, out);
  out->append(" sni=");
  append_logfmt_name(r.sni, out);
  out->append(" backend=");
  // As written in the config, so anything (a unix: path with spaces or quotes): quoted then.
  append_logfmt_name(r.backend, out);
  snprintf(text, sizeof(text), " worker=%u queue_us=%" PRId64 " connect_attempts=%u connect_us=",
           r.worker, r.queue_us, r.connect_attempts);
  out->append(text);
  if (r.connect_us >= 0) {
    out->append(std::to_string(r.connect_us));
  } else {
    out->append("-");
  }
  snprintf(text, sizeof(text),
           " duration_us=%" PRId64 " bytes_from_client=%" PRIu64 " bytes_from_backend=%" PRIu64
           " close=",
           r.duration_us, r.bytes_from_client, r.bytes_from_backend);
  out->append(text);
  out->append(r.close_reason != nullptr ? r.close_reason : "-");
  if (r.tls_version != nullptr) {
    out->append(" tls_version=");
    out->append(r.tls_version);
    out->append(" tls_cipher=");
    out->append(r.tls_cipher != nullptr ? r.tls_cipher : "-");
    out->append(" alpn=");
    const std::string alpn(r.alpn);
    append_logfmt_name(r.alpn.empty() ? nullptr : &alpn, out);
    out->append(" client_cn=");
    append_logfmt_name(r.client_cn, out);
  }
  // Last, so that readers of the older lines find every field where it was.
  out->append(r.update ? " event=update\n" : " event=close\n");
}

void append_access_json(const AccessRecord& r, std::string* out) {
  out->append("{\"time\":\"");
  append_time(r.start_unix_us, out);
  out->append("\",\"client\":");
  append_json_address(r.client, out);
  out->append(",\"listener\":");
  append_json_address(r.listener, out);
  out->append(",\"listener_name\":");
  append_json_name(r.listener_name, out);
  out->append(",\"cluster\":");
  append_json_name(r.cluster, out);
  out->append(",\"sni\":");
  append_json_name(r.sni, out);
  out->append(",\"backend\":");
  if (r.backend != nullptr) {
    append_json_string(*r.backend, out);
  } else {
    out->append("null");
  }
  char text[160];
  snprintf(text, sizeof(text),
           ",\"worker\":%u,\"queue_us\":%" PRId64 ",\"connect_attempts\":%u,\"connect_us\":",
           r.worker, r.queue_us, r.connect_attempts);
  out->append(text);
  if (r.connect_us >= 0) {
    out->append(std::to_string(r.connect_us));
  } else {
    out->append("null");
  }
  snprintf(text, sizeof(text),
           ",\"duration_us\":%" PRId64 ",\"bytes_from_client\":%" PRIu64
           ",\"bytes_from_backend\":%" PRIu64 ",\"close\":",
           r.duration_us, r.bytes_from_client, r.bytes_from_backend);
  out->append(text);
  if (r.close_reason != nullptr) {
    append_json_string(r.close_reason, out);
  } else {
    out->append("null");
  }
  if (r.tls_version != nullptr) {
    out->append(",\"tls_version\":");
    append_json_string(r.tls_version, out);
    out->append(",\"tls_cipher\":");
    append_json_string(r.tls_cipher != nullptr ? r.tls_cipher : "", out);
    out->append(",\"alpn\":");
    if (r.alpn.empty()) {
      out->append("null");
    } else {
      append_json_string(std::string(r.alpn), out);
    }
    out->append(",\"client_cn\":");
    append_json_name(r.client_cn, out);
  }
  out->append(r.update ? ",\"event\":\"update\"}\n" : ",\"event\":\"close\"}\n");
}

void append_access(AccessLogFormat format, const AccessRecord& record, std::string* out) {
  if (format == AccessLogFormat::kJson) {
    append_access_json(record, out);
  } else {
    append_access_line(record, out);
  }
}

StatusOr<std::unique_ptr<AccessLog>> AccessLog::open(const std::string& path, metrics::Registry* stats,
                                                     size_t max_pending_bytes) {
  std::unique_ptr<AccessLog> log(new AccessLog(path, -1, stats, max_pending_bytes));
  StatusOr<int> fd = log->open_fd();
  if (!fd.ok()) return fd.status();
  log->fd_ = fd.value();
  log->writer_ = std::thread([raw = log.get()] { raw->run(); });
  return log;
}

AccessLog::AccessLog(std::string path, int fd, metrics::Registry* stats, size_t max_pending_bytes)
    : path_(std::move(path)), fd_(fd), stats_(stats), max_pending_bytes_(max_pending_bytes) {}

StatusOr<int> AccessLog::open_fd() const {
  const int fd = path_ == "-" ? dup(STDOUT_FILENO) : ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::error("cannot open --access-log '" + path_ + "': " + strerror(errno));
  return fd;
}

AccessLog::~AccessLog() {
  if (writer_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    wake_.notify_one();
    writer_.join();
  }
  if (fd_ >= 0) close(fd_);
}

bool AccessLog::submit(std::string* batch, uint64_t lines) {
  bool taken = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.size() + batch->size() <= max_pending_bytes_) {
      pending_.append(*batch);
      pending_lines_ += lines;
      taken = true;
    } else if (stats_ != nullptr) {
      stats_->access_log_dropped_lines.add(lines);  // every writer of it holds mu_
    }
  }
  batch->clear();
  if (taken) wake_.notify_one();
  return taken;
}

void AccessLog::reopen() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    reopen_ = true;
  }
  wake_.notify_one();
}

void AccessLog::run() {
  pthread_setname_np(pthread_self(), "ringlb-log");
  std::string writing;
  bool reported = false;  // a failing disk is said once, then only counted
  for (;;) {
    uint64_t lines = 0;
    bool reopen = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || reopen_ || !pending_.empty(); });
      if (pending_.empty() && stopping_) return;
      writing.swap(pending_);
      lines = pending_lines_;
      pending_lines_ = 0;
      reopen = reopen_;
      reopen_ = false;
    }
    // Reopened before writing: what is handed over after a SIGHUP lands in the new file.
    if (reopen) {
      const StatusOr<int> fd = open_fd();
      if (!fd.ok()) {
        log(LogLevel::kWarning, "%s; still writing to the old file", fd.status().message().c_str());
      } else {
        close(fd_);
        fd_ = fd.value();
        reported = false;
      }
    }
    if (!writing.empty()) {
      const int ret = write_fully(fd_, writing.data(), writing.size());
      writing.clear();
      std::lock_guard<std::mutex> lock(mu_);
      if (ret < 0) {
        if (stats_ != nullptr) stats_->access_log_dropped_lines.add(lines);
        if (!reported) log(LogLevel::kError, "access log '%s': %s", path_.c_str(), strerror(-ret));
        reported = true;
      } else if (stats_ != nullptr) {
        stats_->access_log_lines.add(lines);
      }
    }
  }
}

}  // namespace ringlb
