// Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of prime size M in which
// each backend owns a share of entries proportional to its weight. Removing one of N backends
// moves only about 1/N of the keys. Pure: no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ringlb::balancer {

inline constexpr uint32_t kDefaultMaglevSize = 65537;

bool is_prime(uint64_t n);

struct MaglevBackend {
  std::string name;  // stable identity (the address as written): the table depends only on it
  uint32_t weight = 1;
};

// Builds the table: entry i holds the index (into `backends`) that owns it. Backends with weight
// 0 own nothing. Returns an empty table when `size` is not prime or no backend has weight.
std::vector<int32_t> build_maglev(const std::vector<MaglevBackend>& backends, uint32_t size);

}  // namespace ringlb::balancer
