#include "metrics/tls_stats.h"

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <limits>

namespace ringlb::metrics {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

const char* tls_result_name(TlsResult r) {
  switch (r) {
#define RINGLB_NAME(name) \
  case TlsResult::k_##name: return #name;
    RINGLB_TLS_RESULTS(RINGLB_NAME)
#undef RINGLB_NAME
    case TlsResult::kCount: break;
  }
  return "?";
}

namespace {

MetricFamily family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

ClientMetric sample(MetricType type, double value, std::vector<ClientMetric::Label> labels) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  return m;
}

ClientMetric histogram(const std::vector<TlsListenerCounters>& workers, std::vector<ClientMetric::Label> labels) {
  ClientMetric m;
  m.label = std::move(labels);
  uint64_t cumulative = 0, sum_ns = 0;
  for (size_t i = 0; i < LocalHistogram::kBuckets; ++i) {
    for (const auto& w : workers) cumulative += w.handshake_time.bucket(i);
    ClientMetric::Bucket b;
    b.cumulative_count = cumulative;
    b.upper_bound = i < LocalHistogram::kBoundsNs.size() ? static_cast<double>(LocalHistogram::kBoundsNs[i]) / 1e9
                                                         : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back(b);
  }
  for (const auto& w : workers) sum_ns += w.handshake_time.sum_ns();
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = static_cast<double>(sum_ns) / 1e9;
  return m;
}

}  // namespace

TlsListenerCounters* TlsStats::listener(const std::string& name, size_t worker) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& l = listeners_[name];
  if (!l) l = std::make_unique<Listener>(workers_);
  l->shown = true;
  return &l->counters[worker < workers_ ? worker : 0];
}

TlsClusterCounters* TlsStats::cluster(const std::string& name, size_t worker) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& c = clusters_[name];
  if (!c) c = std::make_unique<Cluster>(workers_);
  c->shown = true;
  return &c->counters[worker < workers_ ? worker : 0];
}

void TlsStats::set_certificates(const std::string& listener, std::vector<std::pair<std::string, int64_t>> expiries) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& l = listeners_[listener];
  if (!l) l = std::make_unique<Listener>(workers_);
  l->shown = true;
  l->expiries = std::move(expiries);
}

void TlsStats::remove_listener(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = listeners_.find(name); it != listeners_.end()) {
    it->second->shown = false;
    it->second->expiries.clear();
  }
}

void TlsStats::remove_cluster(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = clusters_.find(name); it != clusters_.end()) it->second->shown = false;
}

std::vector<MetricFamily> TlsStats::Collect() const {
  MetricFamily handshakes = family("ringlb_tls_handshakes_total",
                                   "TLS handshakes of clients on terminating listeners, by result: ok, or the close "
                                   "reason (tls_handshake_timeout, tls_no_certificate, tls_bad_certificate, tls_protocol).",
                                   MetricType::Counter);
  MetricFamily seconds = family("ringlb_tls_handshake_seconds",
                                "Time from a client's first TLS byte to its completed handshake.", MetricType::Histogram);
  MetricFamily resumed = family("ringlb_tls_resumed_total", "TLS handshakes that resumed a session (ticket or cache).",
                                MetricType::Counter);
  MetricFamily expiry = family("ringlb_tls_certificate_expiry_timestamp_seconds",
                               "When each certificate a listener serves expires (Unix seconds).", MetricType::Gauge);
  MetricFamily failures = family("ringlb_tls_origination_failures_total",
                                 "TLS handshakes with a cluster's backends that failed, by reason (each a failed connect).",
                                 MetricType::Counter);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, l] : listeners_) {
    if (!l->shown) continue;
    for (size_t r = 0; r < static_cast<size_t>(TlsResult::kCount); ++r) {
      uint64_t n = 0;
      for (const auto& w : l->counters) n += w.handshakes[r].get();
      handshakes.metric.push_back(sample(MetricType::Counter, static_cast<double>(n),
                                         {{"listener", name}, {"result", tls_result_name(static_cast<TlsResult>(r))}}));
    }
    uint64_t n = 0;
    for (const auto& w : l->counters) n += w.resumed.get();
    resumed.metric.push_back(sample(MetricType::Counter, static_cast<double>(n), {{"listener", name}}));
    seconds.metric.push_back(histogram(l->counters, {{"listener", name}}));
    for (const auto& [cert, not_after] : l->expiries) {
      expiry.metric.push_back(sample(MetricType::Gauge, static_cast<double>(not_after), {{"listener", name}, {"name", cert}}));
    }
  }
  for (const auto& [name, c] : clusters_) {
    if (!c->shown) continue;
    for (size_t r = 1; r < static_cast<size_t>(TlsResult::kCount); ++r) {
      uint64_t n = 0;
      for (const auto& w : c->counters) n += w.failures[r].get();
      failures.metric.push_back(sample(MetricType::Counter, static_cast<double>(n),
                                       {{"cluster", name}, {"reason", tls_result_name(static_cast<TlsResult>(r))}}));
    }
  }
  std::vector<MetricFamily> out;
  for (MetricFamily* f : {&handshakes, &seconds, &resumed, &expiry, &failures}) {
    if (!f->metric.empty()) out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace ringlb::metrics
