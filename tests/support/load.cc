#include "tests/support/load.h"

#include <cstring>

#include "tests/support/net.h"

namespace ringlb::testing {

ClientLoop::ClientLoop(std::function<bool()> attempt, int threads, std::chrono::milliseconds pause,
                       int max_each)
    : attempt_(std::move(attempt)) {
  for (int t = 0; t < threads; ++t) {
    threads_.emplace_back([this, pause, max_each] {
      for (int i = 0; i < max_each && !stop_.load(); ++i) {
        (attempt_() ? done_ : failed_).fetch_add(1);
        std::this_thread::sleep_for(pause);
      }
    });
  }
}

void ClientLoop::finish() {
  stop_ = true;
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

bool name_then_echo_once(uint16_t port) {
  Fd fd = connect_loopback(port);
  char name = 0, back[4] = {};
  return fd && (set_recv_timeout(fd.get(), 5000), read_exact(fd.get(), &name, 1)) &&
         write_all(fd.get(), "ping", 4) && read_exact(fd.get(), back, 4) && memcmp(back, "ping", 4) == 0;
}

}  // namespace ringlb::testing
