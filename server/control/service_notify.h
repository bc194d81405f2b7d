// systemd's notify protocol (sd_notify(3)) for Type=notify units: READY=1 once serving,
// RELOADING=1 ... READY=1 around a SIGHUP reload, STOPPING=1 at the drain, and a STATUS= line
// with the live connections. Every call is a no-op when NOTIFY_SOCKET is unset (not under
// systemd), so callers need no checks of their own.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace ringlb::service {

// The listeners are bound and the workers run. `status` becomes the STATUS= line.
void ready(const std::string& status);
// A SIGHUP reload begins; MONOTONIC_USEC= is the CLOCK_MONOTONIC time that systemd's
// Type=notify-reload (253+) requires with it.
void reloading();
// The drain began: no new clients.
void stopping(const std::string& status);
// STATUS= only.
void status(const std::string& status);

// While alive, a thread sends status(line()) every `period` (when NOTIFY_SOCKET is set; none
// is started otherwise). `line` must be safe to call from that thread.
class StatusReporter {
 public:
  StatusReporter(std::function<std::string()> line, std::chrono::milliseconds period);
  ~StatusReporter();
  StatusReporter(const StatusReporter&) = delete;
  StatusReporter& operator=(const StatusReporter&) = delete;

 private:
  std::function<std::string()> line_;
  std::chrono::milliseconds period_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ringlb::service
