#include "balancer/smooth_round_robin.h"

namespace ringlb::balancer {

SmoothRoundRobin::SmoothRoundRobin(std::span<const uint32_t> weights)
    : weights_(weights.begin(), weights.end()), current_(weights.size(), 0) {}

}  // namespace ringlb::balancer
