// Background client load for end-to-end tests of reloads, takeovers and discovery changes: the
// same attempt in a loop, counted as served or failed, while the test changes things under it.
#pragma once

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace ringlb::testing {

// Runs `attempt` in a loop on `threads` threads, `pause` apart, until finish() (or `max_each`
// attempts per thread, so a test that forgets to finish is still bounded); an attempt returns
// true when it was served as the test expects.
class ClientLoop {
 public:
  explicit ClientLoop(std::function<bool()> attempt, int threads = 1,
                      std::chrono::milliseconds pause = std::chrono::milliseconds(2), int max_each = INT_MAX);
  ~ClientLoop() { finish(); }
  ClientLoop(const ClientLoop&) = delete;
  ClientLoop& operator=(const ClientLoop&) = delete;
  // Stops and waits for the attempts in progress. The counts are final afterwards.
  void finish();
  int done() const { return done_.load(); }
  int failed() const { return failed_.load(); }

 private:
  std::function<bool()> attempt_;
  std::atomic<bool> stop_{false};
  std::atomic<int> done_{0}, failed_{0};
  std::vector<std::thread> threads_;
};

// One short connection through a name_then_echo_handler backend (tests/support/backends.h):
// reads its one-byte name, sends 4 bytes and reads them back, within 5 s. True if all of it did.
bool name_then_echo_once(uint16_t port);

}  // namespace ringlb::testing
