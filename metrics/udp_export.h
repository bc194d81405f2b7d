// The UDP families of a scrape (metrics/udp_stats.h), summed over the workers, for the
// listeners marked UDP only (none: no family at all):
//   ringlb_udp_flows_active{listener}                 gauge
//   ringlb_udp_flows_ended_total{listener,reason}     counter
//   ringlb_udp_datagrams_total{listener,direction}    counter (to_backend, to_client)
//   ringlb_udp_bytes_total{listener,direction}        counter
//   ringlb_udp_dropped_total{listener,reason}         counter
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <vector>

#include "metrics/stats.h"

namespace ringlb::metrics {

// `listeners`: the registry's names by index (Registry::listener_names()).
void add_udp_families(const Registry& registry, const std::vector<std::string>& listeners,
                      std::vector<prometheus::MetricFamily>* out);

}  // namespace ringlb::metrics
