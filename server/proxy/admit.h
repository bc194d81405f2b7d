// The admit phase: what a client must pass before a byte of it is read. Its listener's
// max-connections; then, keyed on the socket's own peer address, the listener's trusted-proxies
// (an accept-proxy listener's), ACL and per-source limits. A trusted proxy is not held to the
// ACL and per-source limits itself: its clients are, once its PROXY header names them.
#pragma once

#include "server/proxy/env.h"
#include "server/proxy/io.h"
#include "server/proxy/session.h"
#include "server/proxy/snapshot_cache.h"

namespace ringlb::proxy {

class Admit {
 public:
  Admit(Env& env, Io& io, SnapshotCache& snapshots) : env_(env), io_(io), snapshots_(snapshots) {}
  Admit(const Admit&) = delete;
  Admit& operator=(const Admit&) = delete;

  Step start(Session& s);
  Step on_completion(Session& s, const Completion& c);  // kAdmitPeerName

 private:
  // Whether the client's address is asked for before anything else.
  bool needs_peer(const Session& s) const;
  // The peer is known (or not needed): the rules, then the next phase.
  Step check(Session& s);
  // A client about to send a PROXY header or ClientHello: counted in its listener's handshakes
  // (and its source's), or refused when there are too many already.
  Step handshake(Session& s);
  Step next(Session& s);

  Env& env_;
  Io& io_;
  SnapshotCache& snapshots_;
};

}  // namespace ringlb::proxy
