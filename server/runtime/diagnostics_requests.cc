#include "server/runtime/diagnostics_requests.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

namespace ringlb {

DiagnosticsRequests::DiagnosticsRequests() : fd_(eventfd(0, EFD_CLOEXEC)) {}

DiagnosticsRequests::~DiagnosticsRequests() {
  if (fd_ >= 0) close(fd_);
}

std::optional<std::string> DiagnosticsRequests::fetch(std::chrono::milliseconds fresh,
                                                      std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (answered_ > 0 && now - answered_at_ <= fresh) return text_;
  if (fd_ < 0) return std::nullopt;
  const uint64_t ticket = ++requested_;
  // Several writes before the acceptor reads add up to one wake-up: one round for them all.
  const uint64_t one = 1;
  if (write(fd_, &one, sizeof(one)) != sizeof(one)) return std::nullopt;
  if (!cv_.wait_for(lock, timeout, [&] { return answered_ >= ticket; })) return std::nullopt;
  return text_;
}

uint64_t DiagnosticsRequests::requested() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requested_;
}

void DiagnosticsRequests::answer(uint64_t upto, std::string text) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    answered_ = std::max(answered_, upto);
    text_ = std::move(text);
    answered_at_ = std::chrono::steady_clock::now();
  }
  cv_.notify_all();
}

}  // namespace ringlb
