// Smooth weighted round robin (the nginx algorithm): weights are honoured in an interleaved order,
// so 5:1:1 gives a a b a c a a, never five a's in a burst. Pure: no I/O, one instance per worker.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace ringlb::balancer {

class SmoothRoundRobin {
 public:
  explicit SmoothRoundRobin(std::span<const uint32_t> weights);

  // Picks among the candidates for which `eligible(i)` is true; -1 when none is.
  template <typename Eligible>
  int pick(Eligible&& eligible) {
    int64_t total = 0;
    int best = -1;
    for (size_t i = 0; i < weights_.size(); ++i) {
      if (weights_[i] == 0 || !eligible(static_cast<int>(i))) continue;
      current_[i] += weights_[i];
      total += weights_[i];
      if (best < 0 || current_[i] > current_[static_cast<size_t>(best)]) best = static_cast<int>(i);
    }
    if (best >= 0) current_[static_cast<size_t>(best)] -= total;
    return best;
  }

  int pick() {
    return pick([](int) { return true; });
  }

 private:
  std::vector<int64_t> weights_;
  std::vector<int64_t> current_;
};

}  // namespace ringlb::balancer
