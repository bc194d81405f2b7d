// A reload (SIGHUP): the command line, and so --config FILE, is read again and what a reload can
// change is applied in place: clusters, listeners (added, removed, changed), their policies,
// discovery's prefixes and names, the access log's file. The rest waits for a restart.
#pragma once

#include <string>
#include <vector>

#include "server/config/config.h"

namespace ringlb {

class Acceptor;
struct SharedState;
namespace discovery {
class ClusterPublisher;
class DnsResolver;
class EtcdDiscovery;
}  // namespace discovery

// What a config read at a reload changes that only a restart (or an upgrade) applies, one line
// each: a reload applies the rest and says these were not applied.
std::vector<std::string> not_applied_at_reload(const Config& running, const Config& fresh);

// What a reload changes, all owned by the running process.
struct ReloadTargets {
  SharedState* shared = nullptr;
  Acceptor* acceptor = nullptr;
  discovery::ClusterPublisher* publisher = nullptr;
  discovery::EtcdDiscovery* etcd = nullptr;
  discovery::DnsResolver* resolver = nullptr;
};

// Reloads with the command line `argc`/`argv` (the process's own). Runs on the acceptor's thread,
// outside its reaping of completions (it binds added listeners through that ring). Logs one line,
// "reloaded: ..." or "reload failed: ...; keeping the running configuration" (nothing applied),
// and tells systemd it is ready again either way.
void reload(const ReloadTargets& targets, int argc, const char* const* argv);

}  // namespace ringlb
