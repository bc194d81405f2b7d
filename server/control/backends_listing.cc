#include "server/control/backends_listing.h"

#include "balancer/slow_start.h"
#include "server/clock.h"
#include "server/health/check_spec.h"

namespace ringlb {

std::string backends_listing(SharedState& shared) {
  std::string out;
  const uint64_t now = monotonic_ns();
  for (uint32_t i = 0; i < shared.backends.clusters(); ++i) {
    const std::shared_ptr<const balancer::Snapshot> s = shared.clusters[i].get();
    if (!s || s->retired) continue;
    for (const balancer::BackendSpec& b : s->backends) {
      const balancer::BackendState& state = *b.state;
      out += "cluster=" + shared.backends.cluster_name(i) + " backend=\"" + health::printable(b.name, 256) + "\"";
      out += state.up.load(std::memory_order_relaxed) ? " state=up" : " state=down";
      out += " weight=" + std::to_string(b.weight);
      const uint64_t from = state.ramp_from_ns.load(std::memory_order_relaxed);
      const uint64_t factor = from == 0 || now < from ? balancer::kRampScale
                                                      : balancer::slow_start_factor(now - from, b.slow_start_ms * 1'000'000ULL);
      if (factor < balancer::kRampScale) {
        out += " slow_start=" + std::to_string(factor * 100 / balancer::kRampScale) + "%";
      }
      out += " active=" + std::to_string(state.active.load(std::memory_order_relaxed));
      out += " check=" + std::string(b.check_interval_ms == 0 ? "none"
                                     : b.check ? health::check_type_name(b.check->type)
                                               : "tcp");
      std::string failure;
      {
        std::lock_guard<std::mutex> lock(shared.check_failures_mu);
        failure = shared.last_check_failure[b.id];
      }
      out += " last_failure=" + (failure.empty() ? std::string("-") : "\"" + health::printable(failure, 256) + "\"");
      out += "\n";
    }
  }
  if (out.empty()) out = "no backends\n";
  return out;
}

}  // namespace ringlb
