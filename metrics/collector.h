// ringlb's statistics as Prometheus metric families. Nothing is recorded through prometheus-cpp
// on the data path: Collect() reads the per-thread stats and merges them when Prometheus scrapes.
#pragma once

#include <prometheus/collectable.h>

#include <string>
#include <vector>

#include "metrics/stats.h"

namespace ringlb::metrics {

class Collector : public prometheus::Collectable {
 public:
  Collector(const Registry& registry, std::string version);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const Registry& registry_;
  std::string version_;
};

}  // namespace ringlb::metrics
