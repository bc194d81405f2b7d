// The TLS handshake of a terminating listener's client ([listener.tls]): ciphertext from the
// client's recvs is fed to its stream (server/tls/stream.h), what the stream has to say is sent
// back, one op at a time, until the handshake is done; then the session routes, by the SNI the
// handshake saw. A failure closes the client with its reason (tls_no_certificate,
// tls_bad_certificate, tls_protocol, or at the deadline tls_handshake_timeout), after its alert.
#pragma once

#include <vector>

#include "server/proxy/env.h"
#include "server/proxy/io.h"
#include "server/proxy/session.h"
#include "server/proxy/snapshot_cache.h"
#include "server/proxy/tls_link.h"

namespace ringlb::proxy {

// The close reason of a handshake's failure.
metrics::CloseReason tls_close_reason(tls::Failure f);

class TlsAccept {
 public:
  TlsAccept(Env& env, Io& io, SnapshotCache& snapshots, Extras& extras)
      : env_(env), io_(io), snapshots_(snapshots), extras_(extras) {}
  TlsAccept(const TlsAccept&) = delete;
  TlsAccept& operator=(const TlsAccept&) = delete;

  Step start(Session& s);
  Step on_completion(Session& s, const Completion& c);  // kTlsAcceptRecv, kTlsAcceptSend
  Step on_buffer(Session& s);  // its recv waited for a buffer
  // The session closes in this phase: its handshake's outcome is counted.
  void on_close(Session& s, metrics::CloseReason reason);

 private:
  void recv(Session& s);
  Step on_recv(Session& s, const Completion& c);
  Step on_send(Session& s, int res);
  // After input or a send: the failure, the next send, the next recv, or done.
  Step advance(Session& s);
  Step done(Session& s);
  metrics::TlsListenerCounters* counters(const Session& s);

  Env& env_;
  Io& io_;
  SnapshotCache& snapshots_;
  Extras& extras_;
  std::vector<metrics::TlsListenerCounters*> counters_;  // by listener index, found once
};

}  // namespace ringlb::proxy
