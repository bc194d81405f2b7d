#include "balancer/maglev.h"

#include "balancer/hash.h"

namespace ringlb::balancer {

bool is_prime(uint64_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (uint64_t d = 3; d * d <= n; d += 2) {
    if (n % d == 0) return false;
  }
  return true;
}

std::vector<int32_t> build_maglev(const std::vector<MaglevBackend>& backends, uint32_t size) {
  if (!is_prime(size)) return {};
  const size_t n = backends.size();
  std::vector<uint64_t> offset(n), skip(n), next(n, 0);
  uint64_t total_weight = 0;
  for (size_t i = 0; i < n; ++i) {
    // Each backend walks its own permutation of the table: offset + j * skip (mod size). A prime
    // size makes every skip in [1, size) visit every entry.
    offset[i] = hash64(backends[i].name, 0x6d61676c65763031ULL) % size;
    skip[i] = hash64(backends[i].name, 0x6d61676c65763032ULL) % (size - 1) + 1;
    total_weight += backends[i].weight;
  }
  std::vector<int32_t> table(size, -1);
  if (total_weight == 0) return {};
  uint32_t filled = 0;
  // Weighted rounds: in each round backend i claims `weight` entries (its next free ones along
  // its permutation), so entry counts end up proportional to the weights.
  while (filled < size) {
    for (size_t i = 0; i < n && filled < size; ++i) {
      for (uint32_t w = 0; w < backends[i].weight && filled < size; ++w) {
        uint64_t entry;
        do {
          entry = (offset[i] + next[i] * skip[i]) % size;
          ++next[i];
        } while (table[entry] >= 0);
        table[entry] = static_cast<int32_t>(i);
        ++filled;
      }
    }
  }
  return table;
}

}  // namespace ringlb::balancer
