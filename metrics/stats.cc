#include "metrics/stats.h"

#include <ctime>

namespace ringlb::metrics {

const char* op_name(Op op) {
  static const char* const kNames[] = {
#define RINGLB_NAME(name) #name,
      RINGLB_OPS(RINGLB_NAME)
#undef RINGLB_NAME
  };
  return kNames[static_cast<size_t>(op)];
}

const char* close_reason_name(CloseReason reason) {
  static const char* const kNames[] = {
#define RINGLB_NAME(name) #name,
      RINGLB_CLOSE_REASONS(RINGLB_NAME)
#undef RINGLB_NAME
  };
  return kNames[static_cast<size_t>(reason)];
}

const char* install_reason_name(InstallReason reason) {
  static const char* const kNames[] = {
#define RINGLB_NAME(name) #name,
      RINGLB_INSTALL_REASONS(RINGLB_NAME)
#undef RINGLB_NAME
  };
  return kNames[static_cast<size_t>(reason)];
}

const char* control_drop_name(ControlDrop reason) {
  static const char* const kNames[] = {
#define RINGLB_NAME(name) #name,
      RINGLB_CONTROL_DROPS(RINGLB_NAME)
#undef RINGLB_NAME
  };
  return kNames[static_cast<size_t>(reason)];
}

void AcceptorStats::handoff_failed(int err) {
  for (size_t i = 0; i < kHandoffErrnos.size(); ++i) {
    if (kHandoffErrnos[i] == err) {
      handoff_failures[i].add();
      return;
    }
  }
  handoff_failures.back().add();
}

Registry::Registry(size_t worker_count, const balancer::BackendRegistry* backend_registry,
                   std::vector<std::string> listener_names)
    : backends(backend_registry), listeners(std::move(listener_names)) {
  source_tables = std::vector<SourceTableStats>(listeners.size());
  tls = std::make_shared<TlsStats>(worker_count);
  udp_listeners = UdpListenerSet(listeners.size());
  listener_accepted = std::vector<LocalCounter>(listeners.size());
  for (size_t i = 0; i < worker_count; ++i) {
    workers.push_back(std::make_unique<WorkerStats>());
    // Built whole: a counter (an atomic) cannot be moved, so the vector cannot grow.
    workers.back()->sni_routed = std::vector<LocalCounter>(listeners.size() * balancer::BackendRegistry::kMaxClusters);
    workers.back()->rate_limited_ns = std::vector<LocalCounter>(listeners.size() * 2);
    workers.back()->udp = UdpStats(listeners.size());
  }
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  start_time_seconds = static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

}  // namespace ringlb::metrics
