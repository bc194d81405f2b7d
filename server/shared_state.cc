#include "server/shared_state.h"

namespace ringlb {

std::string publish_snapshot(const Config& config, uint64_t version, SharedState* shared) {
  auto snapshot = std::make_shared<balancer::Snapshot>();
  snapshot->version = version;
  snapshot->policy = config.policy;
  snapshot->hash_key = config.hash_key;
  for (const BackendConfig& b : config.backends) {
    balancer::BackendSpec spec;
    spec.name = b.text;
    spec.weight = b.weight;
    spec.max_connections = b.max_connections;
    spec.backup = b.backup;
    spec.proxy_protocol = static_cast<uint8_t>(b.proxy_protocol);
    spec.check_interval_ms =
        static_cast<uint32_t>(b.health_interval.value_or(config.health.interval).count());
    spec.check_timeout_ms =
        static_cast<uint32_t>(b.health_timeout.value_or(config.health.timeout).count());
    spec.rise = b.health_rise.value_or(config.health.rise);
    spec.fall = b.health_fall.value_or(config.health.fall);
    snapshot->backends.push_back(spec);
  }
  std::string error = balancer::finish_snapshot(snapshot.get(), &shared->backends, config.maglev_size);
  if (!error.empty()) return error;
  for (size_t i = 0; i < config.backends.size(); ++i) {
    shared->backend_addresses[snapshot->backends[i].id] = config.backends[i].address;
  }
  {
    std::lock_guard<std::mutex> lock(shared->acl_mu);
    shared->acl = std::make_shared<const Acl>(config.allow, config.deny);
  }
  shared->snapshot.publish(std::move(snapshot));
  return {};
}

}  // namespace ringlb
