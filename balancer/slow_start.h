// Slow start (HAProxy's `slowstart`, nginx's `slow_start`): a backend that has just come up, or
// was just added, gets a share of its weight that grows linearly over the duration, so a cold
// cache or a JIT is not handed its full share of new clients at once.
#pragma once

#include <cstdint>

namespace ringlb::balancer {

// Effective weights are in 1/kRampScale of a weight unit, so a weight-1 backend can ramp too.
inline constexpr uint64_t kRampScale = 1024;
// The share a ramp starts from: 1/32 of the weight, so the backend gets a few clients at once
// (its checks say it works) without their full share.
inline constexpr uint64_t kRampFloor = kRampScale / 32;

// The fraction of its weight, in 1/kRampScale, a backend gets `elapsed_ns` into a ramp of
// `duration_ns`: from kRampFloor up to kRampScale at the end (and after; a duration of 0 is no
// ramp).
uint64_t slow_start_factor(uint64_t elapsed_ns, uint64_t duration_ns);

// `weight` scaled by kRampScale, ramped: what the policies compare during slow start.
inline uint64_t effective_weight(uint32_t weight, uint64_t elapsed_ns, uint64_t duration_ns) {
  return weight * slow_start_factor(elapsed_ns, duration_ns);
}

}  // namespace ringlb::balancer
