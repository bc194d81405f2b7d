#include "server/runtime/summary.h"

namespace ringlb {

std::string plural(size_t n, const char* what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

std::string clusters_summary(const Config& config, size_t* backends) {
  std::string text;
  *backends = 0;
  for (const ClusterConfig& c : config.clusters) {
    *backends += c.backends.size();
    text += (text.empty() ? "" : ", ") + c.name + ": " + balancer::policy_name(c.policy);
  }
  return text;
}

std::string status_line(const SharedState& shared) {
  return "serving " + plural(shared.active_connections(), "connection");
}

}  // namespace ringlb
