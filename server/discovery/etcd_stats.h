// What etcd discovery counts, per watched (cluster, prefix), and its Prometheus families:
// ringlb_etcd_watch_up, ringlb_etcd_keys, ringlb_etcd_backends, ringlb_etcd_revision (gauges),
// ringlb_etcd_bad_values_total, ringlb_etcd_reconnects_total, ringlb_etcd_resyncs_total. Written by
// the discovery thread, read on scrape: relaxed atomics, a mutex only for the list itself.
#pragma once

#include <prometheus/collectable.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace ringlb::discovery::etcd {

struct WatchStats {
  std::atomic<int> up{0};  // 1 while the watch stream is established
  std::atomic<uint64_t> keys{0}, backends{0};
  std::atomic<int64_t> revision{0};
  std::atomic<uint64_t> bad_values{0}, reconnects{0}, resyncs{0};
};

class StatsCollector : public prometheus::Collectable {
 public:
  // The stats of a watch, made on first use; kept while the watch is configured.
  std::shared_ptr<WatchStats> get(const std::string& cluster, const std::string& prefix);
  // A reload stopped watching it: its series leave /metrics.
  void remove(const std::string& cluster, const std::string& prefix);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<WatchStats>> stats_;
};

}  // namespace ringlb::discovery::etcd
