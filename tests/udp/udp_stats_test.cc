// The UDP metrics as a scrape shows them: per-worker counts summed by listener, with direction and
// reason labels, for the listeners marked UDP only; no UDP family at all without one.
#include <gtest/gtest.h>
#include <prometheus/metric_family.h>

#include <map>
#include <string>
#include <vector>

#include "balancer/snapshot.h"
#include "metrics/exporter.h"
#include "metrics/stats.h"

namespace ringlb::metrics {
namespace {

// name{label=value,...} -> value, for the families whose name starts with ringlb_udp_.
std::map<std::string, double> udp_samples(const Registry& r) {
  std::map<std::string, double> out;
  for (const prometheus::MetricFamily& f : Collector(r, "test").Collect()) {
    if (f.name.rfind("ringlb_udp_", 0) != 0) continue;
    for (const prometheus::ClientMetric& m : f.metric) {
      std::string key = f.name + "{";
      for (const auto& l : m.label) key += l.name + "=" + l.value + ",";
      key.back() = '}';
      out[key] = f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  return out;
}

TEST(UdpStats, ScrapesSumTheWorkersForUdpListenersOnly) {
  balancer::BackendRegistry backends;
  Registry r(2, &backends, {"web", "dns", "syslog"});
  EXPECT_TRUE(udp_samples(r).empty()) << "no UDP listener: no UDP family";

  r.udp_listeners.mark(1);
  r.udp_listeners.mark(2);
  r.udp_listeners.mark(99);  // out of range: ignored
  UdpListenerStats& dns0 = r.workers[0]->udp.of(1);
  UdpListenerStats& dns1 = r.workers[1]->udp.of(1);
  dns0.flow_started();
  dns0.flow_started();
  dns1.flow_started();
  dns0.flow_ended(UdpFlowEnd::k_responses);
  dns0.datagram(UdpDirection::kToBackend, 40);
  dns1.datagram(UdpDirection::kToBackend, 60);
  dns1.datagram(UdpDirection::kToClient, 512);
  dns0.drop(UdpDrop::k_truncated);
  dns1.drop(UdpDrop::k_truncated);
  dns1.drop(UdpDrop::k_backend_refused);

  const std::map<std::string, double> s = udp_samples(r);
  EXPECT_EQ(s.at("ringlb_udp_flows_active{listener=dns}"), 2);
  EXPECT_EQ(s.at("ringlb_udp_flows_ended_total{listener=dns,reason=responses}"), 1);
  EXPECT_EQ(s.at("ringlb_udp_flows_ended_total{listener=dns,reason=idle_timeout}"), 0);
  EXPECT_EQ(s.at("ringlb_udp_datagrams_total{listener=dns,direction=to_backend}"), 2);
  EXPECT_EQ(s.at("ringlb_udp_datagrams_total{listener=dns,direction=to_client}"), 1);
  EXPECT_EQ(s.at("ringlb_udp_bytes_total{listener=dns,direction=to_backend}"), 100);
  EXPECT_EQ(s.at("ringlb_udp_bytes_total{listener=dns,direction=to_client}"), 512);
  EXPECT_EQ(s.at("ringlb_udp_dropped_total{listener=dns,reason=truncated}"), 2);
  EXPECT_EQ(s.at("ringlb_udp_dropped_total{listener=dns,reason=backend_refused}"), 1);
  EXPECT_EQ(s.at("ringlb_udp_dropped_total{listener=dns,reason=no_backend}"), 0);
  EXPECT_EQ(s.at("ringlb_udp_flows_active{listener=syslog}"), 0) << "a UDP listener without traffic: zeros";
  EXPECT_EQ(s.count("ringlb_udp_flows_active{listener=web}"), 0u) << "the TCP listener has no UDP series";
  // Every reason and direction has its series: 1 + 2 + 2 + 10 + 6 per listener.
  EXPECT_EQ(s.size(), 2u * (1 + 2 + 2 + static_cast<size_t>(UdpDrop::kCount) + static_cast<size_t>(UdpFlowEnd::kCount)));
  EXPECT_STREQ(udp_drop_name(UdpDrop::k_draining), "draining");
  EXPECT_STREQ(udp_flow_end_name(UdpFlowEnd::k_error), "error");
}

}  // namespace
}  // namespace ringlb::metrics
