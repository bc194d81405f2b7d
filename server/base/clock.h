// Monotonic time read once per event-loop iteration.
#pragma once

#include <time.h>

#include <cstdint>

namespace ringlb {

inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

// Wall-clock milliseconds since the Unix epoch (what a person reads: "last checked at").
inline uint64_t unix_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000ULL + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000ULL;
}

inline uint32_t micros32(uint64_t ns) { return static_cast<uint32_t>(ns / 1000); }

// Nanoseconds since a 32-bit microsecond stamp taken earlier (wrap-safe for 71 minutes).
inline uint64_t elapsed_ns_since(uint32_t stamp_us, uint64_t now_ns) {
  return static_cast<uint64_t>(static_cast<uint32_t>(micros32(now_ns) - stamp_us)) * 1000ULL;
}

}  // namespace ringlb
