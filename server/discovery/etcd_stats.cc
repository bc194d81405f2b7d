#include "server/discovery/etcd_stats.h"

#include <prometheus/metric_family.h>

namespace ringlb::discovery::etcd {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

std::shared_ptr<WatchStats> StatsCollector::get(const std::string& cluster, const std::string& prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& s = stats_[{cluster, prefix}];
  if (!s) s = std::make_shared<WatchStats>();
  return s;
}

void StatsCollector::remove(const std::string& cluster, const std::string& prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.erase({cluster, prefix});
}

std::vector<MetricFamily> StatsCollector::Collect() const {
  struct Def {
    const char* name;
    const char* help;
    MetricType type;
    double (*read)(const WatchStats&);
  };
  static const Def kDefs[] = {
      {"ringlb_etcd_watch_up",
       "Whether the etcd watch of the cluster's prefix is established (1) or being re-established (0).",
       MetricType::Gauge, [](const WatchStats& s) { return double(s.up.load(std::memory_order_relaxed)); }},
      {"ringlb_etcd_keys", "Keys under the cluster's etcd prefix, malformed ones included.", MetricType::Gauge,
       [](const WatchStats& s) { return double(s.keys.load(std::memory_order_relaxed)); }},
      {"ringlb_etcd_backends", "Backends the cluster's etcd prefix gives it now.", MetricType::Gauge,
       [](const WatchStats& s) { return double(s.backends.load(std::memory_order_relaxed)); }},
      {"ringlb_etcd_revision", "The last etcd revision applied to the cluster.", MetricType::Gauge,
       [](const WatchStats& s) { return double(s.revision.load(std::memory_order_relaxed)); }},
      {"ringlb_etcd_bad_values_total", "Values under the prefix skipped as malformed (each time read).",
       MetricType::Counter, [](const WatchStats& s) { return double(s.bad_values.load(std::memory_order_relaxed)); }},
      {"ringlb_etcd_reconnects_total", "Watches of the prefix that ended or failed and were started again.",
       MetricType::Counter, [](const WatchStats& s) { return double(s.reconnects.load(std::memory_order_relaxed)); }},
      {"ringlb_etcd_resyncs_total", "Full re-reads of the prefix after a compaction or a canceled watch.",
       MetricType::Counter, [](const WatchStats& s) { return double(s.resyncs.load(std::memory_order_relaxed)); }},
  };
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<MetricFamily> out;
  if (stats_.empty()) return out;
  for (const Def& d : kDefs) {
    MetricFamily f;
    f.name = d.name;
    f.help = d.help;
    f.type = d.type;
    for (const auto& [key, s] : stats_) {
      ClientMetric m;
      m.label = {{"cluster", key.first}, {"prefix", key.second}};
      if (d.type == MetricType::Counter) {
        m.counter.value = d.read(*s);
      } else {
        m.gauge.value = d.read(*s);
      }
      f.metric.push_back(std::move(m));
    }
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace ringlb::discovery::etcd
