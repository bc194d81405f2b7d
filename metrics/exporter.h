// Serves ringlb's statistics at /metrics through prometheus-cpp's Exposer. Nothing is recorded
// through prometheus-cpp on the data path: the Collectable reads the per-thread stats and merges
// them into metric families when Prometheus scrapes.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>

#include <memory>
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

class Exporter {
 public:
  // Throws nothing: returns null and sets *error when the address cannot be served.
  static std::unique_ptr<Exporter> start(const std::string& bind, const Registry& registry,
                                         const std::string& version, std::string* error);

 public:
  // The port actually bound (useful with port 0).
  int port() const;

 private:
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<Collector> collector_;
};

}  // namespace ringlb::metrics
