// The one way ringlb reports an error outside the data path (configuration, start-up, reloads,
// discovery, the control socket): a Status that is either ok or says what went wrong, for a
// person, and with which exit code a process that cannot start because of it ends. The data path
// keeps the kernel's convention instead: 0 or -errno, nothing allocated.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstdarg>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringlb {

// Exit codes: bad input (an unknown flag, a config value, an address in use) is 2, so scripts
// and systemd tell it from the machine refusing (a kernel without an operation, a memory lock
// limit), which is 1.
inline constexpr int kExitBadInput = 2;
inline constexpr int kExitFailure = 1;

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok

  // An error whose message is `message` (one problem a line when several were found).
  static Status error(std::string message, int exit_code = kExitBadInput) {
    Status s;
    s.message_ = message.empty() ? std::string("error") : std::move(message);
    s.exit_code_ = exit_code;
    return s;
  }
  // printf-style.
  static Status errorf(const char* format, ...) __attribute__((format(printf, 1, 2)));
  // The same, ending the process with kExitFailure: the machine, not the input, refused.
  static Status failure(std::string message) { return error(std::move(message), kExitFailure); }

  bool ok() const { return exit_code_ == 0; }
  const std::string& message() const { return message_; }  // empty when ok
  int exit_code() const { return exit_code_; }              // 0 when ok

  // "context: message" (no-op when ok), for an error passed up through a caller that knows more.
  Status& prefix(std::string_view context) {
    if (!ok()) message_ = std::string(context) + ": " + message_;
    return *this;
  }
  // Adds `other`'s lines below this one's (an error collected with others); ok stays ok.
  void add(const Status& other) {
    if (other.ok()) return;
    if (ok()) {
      *this = other;
      return;
    }
    message_ += "\n" + other.message_;
  }
  // The message one problem a line.
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    for (size_t at = 0; at < message_.size();) {
      const size_t end = std::min(message_.find('\n', at), message_.size());
      out.push_back(message_.substr(at, end - at));
      at = end + 1;
    }
    return out;
  }

 private:
  std::string message_;
  int exit_code_ = 0;
};

inline Status Status::errorf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  char buf[1024];
  vsnprintf(buf, sizeof(buf), format, args);
  va_end(args);
  return error(buf);
}

// A value, or the error that kept it from being made (an open file, a started thread...).
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit, as a return value
  // `status` must be an error: an ok StatusOr holds a value.
  StatusOr(Status status) : status_(std::move(status)) { assert(!status_.ok()); }  // NOLINT

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  // The value; only when ok().
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T& operator*() { return *value_; }
  T* operator->() { return &*value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

// Returns from the calling function when `expr` (a Status) is an error.
#define RINGLB_RETURN_IF_ERROR(expr)          \
  do {                                        \
    ::ringlb::Status ringlb_status_ = (expr); \
    if (!ringlb_status_.ok()) return ringlb_status_; \
  } while (false)

}  // namespace ringlb
