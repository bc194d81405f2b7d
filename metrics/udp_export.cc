#include "metrics/udp_export.h"

#include <prometheus/client_metric.h>
#include <prometheus/metric_type.h>

namespace ringlb::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

void add(MetricFamily* f, double value, std::vector<ClientMetric::Label> labels) {
  ClientMetric m;
  m.label = std::move(labels);
  (f->type == MetricType::Counter ? m.counter.value : m.gauge.value) = value;
  f->metric.push_back(std::move(m));
}

// The sum over the workers of one counter of listener `l`.
template <typename Get>
double sum(const Registry& r, size_t l, Get get) {
  uint64_t n = 0;
  for (const auto& w : r.workers) {
    if (l < w->udp.listeners.size()) n += get(w->udp.listeners[l]).get();
  }
  return static_cast<double>(n);
}

}  // namespace

void add_udp_families(const Registry& r, const std::vector<std::string>& listeners, std::vector<MetricFamily>* out) {
  MetricFamily active = family("ringlb_udp_flows_active", "Live UDP flows, by listener.", MetricType::Gauge);
  MetricFamily ended = family("ringlb_udp_flows_ended_total", "UDP flows ended, by listener and reason.", MetricType::Counter);
  MetricFamily datagrams = family("ringlb_udp_datagrams_total",
                                  "UDP datagrams forwarded, by listener and direction (to_backend, to_client).",
                                  MetricType::Counter);
  MetricFamily bytes = family("ringlb_udp_bytes_total", "UDP payload bytes forwarded, by listener and direction.",
                              MetricType::Counter);
  MetricFamily dropped = family("ringlb_udp_dropped_total", "UDP datagrams not forwarded, by listener and reason.",
                                MetricType::Counter);
  for (size_t l = 0; l < listeners.size(); ++l) {
    if (!r.udp_listeners.is_udp(l)) continue;
    const ClientMetric::Label name{"listener", listeners[l]};
    add(&active, sum(r, l, [](const UdpListenerStats& s) -> const LocalCounter& { return s.flows_active; }), {name});
    for (size_t d = 0; d < static_cast<size_t>(UdpDirection::kCount); ++d) {
      const ClientMetric::Label direction{"direction", udp_direction_name(static_cast<UdpDirection>(d))};
      add(&datagrams, sum(r, l, [d](const UdpListenerStats& s) -> const LocalCounter& { return s.datagrams[d]; }),
          {name, direction});
      add(&bytes, sum(r, l, [d](const UdpListenerStats& s) -> const LocalCounter& { return s.bytes[d]; }),
          {name, direction});
    }
    for (size_t i = 0; i < static_cast<size_t>(UdpDrop::kCount); ++i) {
      add(&dropped, sum(r, l, [i](const UdpListenerStats& s) -> const LocalCounter& { return s.dropped[i]; }),
          {name, {"reason", udp_drop_name(static_cast<UdpDrop>(i))}});
    }
    for (size_t i = 0; i < static_cast<size_t>(UdpFlowEnd::kCount); ++i) {
      add(&ended, sum(r, l, [i](const UdpListenerStats& s) -> const LocalCounter& { return s.flows_ended[i]; }),
          {name, {"reason", udp_flow_end_name(static_cast<UdpFlowEnd>(i))}});
    }
  }
  if (active.metric.empty()) return;
  for (MetricFamily* f : {&active, &ended, &datagrams, &bytes, &dropped}) out->push_back(std::move(*f));
}

}  // namespace ringlb::metrics
