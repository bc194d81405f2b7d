// The TLS metric families: per-worker counters summed per listener and cluster, the handshake
// histogram, certificate expiries, and the series of a removed listener leaving /metrics.
#include "metrics/tls_stats.h"

#include <gtest/gtest.h>
#include <prometheus/metric_family.h>

#include <map>
#include <string>

namespace ringlb::metrics {
namespace {

using prometheus::MetricFamily;

const MetricFamily* find(const std::vector<MetricFamily>& families, const std::string& name) {
  for (const MetricFamily& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// The value of the sample with exactly these labels (counter or gauge), or -1.
double value(const std::vector<MetricFamily>& families, const std::string& name,
             const std::map<std::string, std::string>& labels) {
  const MetricFamily* f = find(families, name);
  if (f == nullptr) return -1;
  for (const auto& m : f->metric) {
    std::map<std::string, std::string> got;
    for (const auto& l : m.label) got[l.name] = l.value;
    if (got == labels) return f->type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
  }
  return -1;
}

TEST(TlsStats, SumsWorkersPerListenerAndCluster) {
  TlsStats stats(2);
  TlsListenerCounters* w0 = stats.listener("https", 0);
  TlsListenerCounters* w1 = stats.listener("https", 1);
  EXPECT_EQ(stats.listener("https", 0), w0) << "found again, not made again";
  w0->handshake(TlsResult::k_ok);
  w1->handshake(TlsResult::k_ok);
  w1->handshake(TlsResult::k_tls_no_certificate);
  w0->resumed.add();
  w0->handshake_time.observe_ns(2'000'000);  // 2 ms
  w1->handshake_time.observe_ns(40'000'000);
  stats.cluster("web", 1)->failed(TlsResult::k_tls_bad_certificate);
  stats.set_certificates("https", {{"www.example.com", 1'900'000'000}, {"*.example.org", 1'800'000'000}});

  const auto families = stats.Collect();
  EXPECT_EQ(value(families, "ringlb_tls_handshakes_total", {{"listener", "https"}, {"result", "ok"}}), 2);
  EXPECT_EQ(value(families, "ringlb_tls_handshakes_total", {{"listener", "https"}, {"result", "tls_no_certificate"}}), 1);
  EXPECT_EQ(value(families, "ringlb_tls_handshakes_total", {{"listener", "https"}, {"result", "tls_protocol"}}), 0)
      << "every result has a series, zero or not";
  EXPECT_EQ(value(families, "ringlb_tls_resumed_total", {{"listener", "https"}}), 1);
  EXPECT_EQ(value(families, "ringlb_tls_certificate_expiry_timestamp_seconds",
                  {{"listener", "https"}, {"name", "*.example.org"}}),
            1'800'000'000);
  EXPECT_EQ(value(families, "ringlb_tls_origination_failures_total",
                  {{"cluster", "web"}, {"reason", "tls_bad_certificate"}}),
            1);
  EXPECT_EQ(value(families, "ringlb_tls_origination_failures_total", {{"cluster", "web"}, {"reason", "ok"}}), -1)
      << "ok is not a failure";
  const MetricFamily* h = find(families, "ringlb_tls_handshake_seconds");
  ASSERT_NE(h, nullptr);
  ASSERT_EQ(h->metric.size(), 1u);
  EXPECT_EQ(h->metric[0].histogram.sample_count, 2u);
  EXPECT_DOUBLE_EQ(h->metric[0].histogram.sample_sum, 0.042);
  std::map<double, uint64_t> cumulative;
  for (const auto& b : h->metric[0].histogram.bucket) cumulative[b.upper_bound] = b.cumulative_count;
  EXPECT_EQ(cumulative[0.001], 0u);
  EXPECT_EQ(cumulative[0.005], 1u);
  EXPECT_EQ(cumulative[0.05], 2u);
}

TEST(TlsStats, ARemovedListenerLeavesMetricsAndComesBack) {
  TlsStats stats(1);
  EXPECT_TRUE(stats.Collect().empty()) << "no TLS configured: no families";
  TlsListenerCounters* c = stats.listener("https", 0);
  c->handshake(TlsResult::k_ok);
  stats.set_certificates("https", {{"www.example.com", 1'900'000'000}});
  stats.remove_listener("https");
  c->handshake(TlsResult::k_ok);  // a draining connection still counts, harmlessly
  EXPECT_EQ(value(stats.Collect(), "ringlb_tls_handshakes_total", {{"listener", "https"}, {"result", "ok"}}), -1);
  stats.listener("https", 0);
  const auto back = stats.Collect();
  EXPECT_EQ(value(back, "ringlb_tls_handshakes_total", {{"listener", "https"}, {"result", "ok"}}), 2)
      << "the counter kept counting";
  EXPECT_EQ(value(back, "ringlb_tls_certificate_expiry_timestamp_seconds",
                  {{"listener", "https"}, {"name", "www.example.com"}}),
            -1)
      << "its old certificates are gone until the reload sets them";
  EXPECT_STREQ(tls_result_name(TlsResult::k_tls_handshake_timeout), "tls_handshake_timeout");
}

}  // namespace
}  // namespace ringlb::metrics
