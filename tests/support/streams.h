// A long-lived client stream for end-to-end tests of upgrades and reloads, through a
// name_then_echo_handler backend (tests/support/backends.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

namespace ringlb::testing {

// Connects, reads the backend's one-letter name, then sends `chunks` chunks of 8 KiB of random
// bytes, one every 40 ms, reading each echo back; `ok` when every byte came back in order and the
// stream ended cleanly after its FIN. The destructor waits for the stream to end.
struct LongStream {
  char served_by = 0;
  std::atomic<bool> connected{false};  // connected and named by its backend
  std::atomic<bool> ok{false};
  std::thread thread;
  LongStream(uint16_t port, int chunks);
  ~LongStream();
};

}  // namespace ringlb::testing
