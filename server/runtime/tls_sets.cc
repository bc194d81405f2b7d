#include "server/runtime/tls_sets.h"

#include <mutex>

namespace ringlb {

Status build_tls(const Config& config, const SharedState& shared, const std::vector<uint16_t>* indexes,
                 TlsSets* out) {
  std::shared_ptr<const ListenerPolicies> running;
  {
    std::lock_guard<std::mutex> lock(const_cast<std::mutex&>(shared.policies_mu));
    running = shared.policies;
  }
  Status all;
  out->listeners.assign(config.listen.size(), nullptr);
  for (size_t i = 0; i < config.listen.size(); ++i) {
    const ListenConfig& l = config.listen[i];
    if (!l.tls) continue;
    tls::ServerOptions options;
    options.listener = l.name;
    options.workers = config.workers;
    const size_t index = indexes != nullptr ? (*indexes)[i] : i;
    if (running && index < running->listeners.size() && running->listeners[index].tls) {
      options.ticket_keys = running->listeners[index].tls->ticket_keys();
    }
    std::vector<std::string> warnings;
    all.add(tls::ServerContextSet::build(*l.tls, options, &out->listeners[i], &warnings));
    for (std::string& w : warnings) out->warnings.push_back(std::move(w));
  }
  for (const ClusterConfig& c : config.clusters) {
    if (!c.tls) continue;
    std::shared_ptr<const tls::ClientContextSet> set;
    const Status built = tls::ClientContextSet::build(*c.tls, c.name, config.workers, &set);
    all.add(built);
    if (built.ok()) out->clusters.emplace_back(c.name, std::move(set));
  }
  return all;
}

}  // namespace ringlb
