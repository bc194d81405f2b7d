#include "balancer/slow_start.h"

namespace ringlb::balancer {

uint64_t slow_start_factor(uint64_t elapsed_ns, uint64_t duration_ns) {
  if (duration_ns == 0 || elapsed_ns >= duration_ns) return kRampScale;
  // elapsed < duration < 2^41 ns (576 h), so the product stays far below 2^64.
  const uint64_t f = elapsed_ns / 1000 * kRampScale / (duration_ns / 1000 == 0 ? 1 : duration_ns / 1000);
  return f < kRampFloor ? kRampFloor : f;
}

}  // namespace ringlb::balancer
