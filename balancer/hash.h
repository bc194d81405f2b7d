// Stable 64-bit hashes: the same input gives the same value in every process and on every run,
// so two ringlb processes with the same backends build the same Maglev table and send a client
// to the same backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ringlb::balancer {

// FNV-1a, then a murmur-style finaliser so that nearby inputs spread over the whole range.
inline uint64_t hash64(const void* data, size_t len, uint64_t seed = 0) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t h = 1469598103934665603ULL ^ seed;
  for (size_t i = 0; i < len; ++i) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

inline uint64_t hash64(std::string_view s, uint64_t seed = 0) { return hash64(s.data(), s.size(), seed); }

}  // namespace ringlb::balancer
