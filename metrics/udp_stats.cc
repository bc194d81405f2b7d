#include "metrics/udp_stats.h"

namespace ringlb::metrics {

const char* udp_drop_name(UdpDrop reason) {
  static const char* const kNames[] = {
#define RINGLB_NAME(name) #name,
      RINGLB_UDP_DROP_REASONS(RINGLB_NAME)
#undef RINGLB_NAME
  };
  return kNames[static_cast<size_t>(reason)];
}

const char* udp_flow_end_name(UdpFlowEnd reason) {
  static const char* const kNames[] = {
#define RINGLB_NAME(name) #name,
      RINGLB_UDP_FLOW_ENDS(RINGLB_NAME)
#undef RINGLB_NAME
  };
  return kNames[static_cast<size_t>(reason)];
}

const char* udp_direction_name(UdpDirection d) {
  return d == UdpDirection::kToBackend ? "to_backend" : "to_client";
}

}  // namespace ringlb::metrics
