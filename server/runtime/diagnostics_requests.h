// How the status page's JSON API (/api/v1/connections, on the metrics server's threads) gets what
// `ringlb ctl PATH connections` lists without touching the data path: it asks the acceptor, which
// runs the same round of worker diagnostics it runs for a control client (control_server.cc).
// The asking thread takes a ticket and writes an eventfd that the acceptor's ring reads; when a
// round ends, the acceptor answers every ticket it had seen when the round's wake-up came. A
// round at most `fresh` old is handed out again without asking: a page refreshing every two
// seconds, or many of them, costs the workers at most one round per `fresh`.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

namespace ringlb {

class DiagnosticsRequests {
 public:
  DiagnosticsRequests();
  ~DiagnosticsRequests();
  DiagnosticsRequests(const DiagnosticsRequests&) = delete;
  DiagnosticsRequests& operator=(const DiagnosticsRequests&) = delete;

  // The acceptor reads this (8 bytes, EFD_CLOEXEC); -1 if it could not be made.
  int event_fd() const { return fd_; }

  // Any thread but the acceptor's: the text of a round that ended at most `fresh` ago, or of the
  // next one; nullopt when none ended within `timeout` (the acceptor is gone or stuck).
  std::optional<std::string> fetch(std::chrono::milliseconds fresh, std::chrono::milliseconds timeout);

  // The acceptor, after reading the eventfd: the last ticket taken so far (answer up to it).
  uint64_t requested() const;
  // The acceptor, when a round ends: answers the tickets up to `upto` with `text`.
  void answer(uint64_t upto, std::string text);

 private:
  int fd_ = -1;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t requested_ = 0;
  uint64_t answered_ = 0;
  std::string text_;
  std::chrono::steady_clock::time_point answered_at_{};
};

}  // namespace ringlb
