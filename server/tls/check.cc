#include "server/tls/check.h"

#include "server/tls/client_context.h"
#include "server/tls/server_context.h"

namespace ringlb::tls {

Status check_files(const Config& config, std::vector<std::string>* warnings, int64_t now) {
  Status status;
  for (const ListenConfig& l : config.listen) {
    if (!l.tls) continue;
    std::shared_ptr<const ServerContextSet> set;
    status.add(ServerContextSet::build(*l.tls, {.listener = l.name, .workers = 1, .now = now}, &set, warnings));
  }
  for (const ClusterConfig& c : config.clusters) {
    if (!c.tls) continue;
    std::shared_ptr<const ClientContextSet> set;
    status.add(ClientContextSet::build(*c.tls, c.name, 1, &set));
  }
  return status;
}

}  // namespace ringlb::tls
