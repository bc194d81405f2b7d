#include "server/control/service_notify.h"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdlib>
#include <cstring>

#include "server/base/log.h"

namespace ringlb::service {
namespace {

bool enabled() {
  const char* socket = getenv("NOTIFY_SOCKET");
  return socket != nullptr && *socket != '\0';
}

// unset_environment 0: a process ringlb starts (none today) could report as well.
void send(const std::string& message) {
  if (!enabled()) return;
  const int ret = sd_notify(0, message.c_str());
  std::string line = message;  // one log line
  for (char& ch : line) ch = ch == '\n' ? ' ' : ch;
  if (ret < 0) {
    log(LogLevel::kWarning, "sd_notify %s: %s", line.c_str(), strerror(-ret));
  } else {
    log(LogLevel::kDebug, "sd_notify %s", line.c_str());
  }
}

}  // namespace

void ready(const std::string& line) { send("READY=1\nSTATUS=" + line); }

void reloading() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const unsigned long long usec =
      static_cast<unsigned long long>(now.tv_sec) * 1000000ull + static_cast<unsigned long long>(now.tv_nsec) / 1000;
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\nSTATUS=reloading the configuration");
}

void stopping(const std::string& line) { send("STOPPING=1\nSTATUS=" + line); }

void status(const std::string& line) { send("STATUS=" + line); }

StatusReporter::StatusReporter(std::function<std::string()> line, std::chrono::milliseconds period)
    : line_(std::move(line)), period_(period) {
  if (!enabled()) return;
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!wake_.wait_for(lock, period_, [this] { return stop_; })) {
      lock.unlock();
      status(line_());
      lock.lock();
    }
  });
}

StatusReporter::~StatusReporter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace ringlb::service
