// The route phase: the session's cluster (its listener's, or by the ClientHello's server name on
// an SNI listener), that cluster's newest balancer snapshot, and the key Maglev hashes (the
// client's address, asked of the socket here if nothing asked before).
#pragma once

#include <vector>

#include "metrics/tls_stats.h"
#include "server/proxy/env.h"
#include "server/proxy/io.h"
#include "server/proxy/session.h"
#include "server/proxy/snapshot_cache.h"

namespace ringlb::proxy {

class Route {
 public:
  Route(Env& env, Io& io, SnapshotCache& snapshots, Extras& extras)
      : env_(env), io_(io), snapshots_(snapshots), extras_(extras) {}
  Route(const Route&) = delete;
  Route& operator=(const Route&) = delete;

  Step start(Session& s);
  Step on_completion(Session& s, const Completion& c);  // kRoutePeerName

 private:
  // The client's address is known, or not needed: the hash key, then connect.
  Step keyed(Session& s);

  Env& env_;
  Io& io_;
  SnapshotCache& snapshots_;
  Extras& extras_;
  std::vector<metrics::TlsClusterCounters*> counters_;  // by cluster index, found once
};

}  // namespace ringlb::proxy
