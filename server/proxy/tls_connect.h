// The TLS handshake with a backend of an originating cluster ([cluster.NAME.tls]), after its
// connect (and any send-proxy header, which goes in the clear before it, as HAProxy sends it).
// It verifies the chain and the name (on by default), sends the SNI, ALPN and a client
// certificate if configured, and resumes the backend's last session. A failure counts as a
// failed connect: the socket is closed and the connect phase tries the next backend; its error
// is logged once per backend and change.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "server/proxy/env.h"
#include "server/proxy/io.h"
#include "server/proxy/session.h"
#include "server/proxy/tls_link.h"

namespace ringlb::proxy {

class TlsConnect {
 public:
  TlsConnect(Env& env, Io& io, Extras& extras) : env_(env), io_(io), extras_(extras) {}
  TlsConnect(const TlsConnect&) = delete;
  TlsConnect& operator=(const TlsConnect&) = delete;

  Step start(Session& s);
  Step on_completion(Session& s, const Completion& c);  // kTlsConnectRecv, kTlsConnectSend
  Step on_buffer(Session& s);  // its recv waited for a buffer
  // The session closes in this phase: counted as an origination failure.
  void on_close(Session& s, metrics::CloseReason reason);

 private:
  void recv(Session& s);
  Step on_recv(Session& s, const Completion& c);
  Step on_send(Session& s, int res);
  Step advance(Session& s);
  // The handshake failed: the backend counts as failed, the next one is tried.
  Step failed(Session& s, metrics::TlsResult result, const std::string& why);
  // The name the backend's certificate must hold: the cluster's sni, else the backend's host.
  std::string verify_name(const Session& s) const;

  Env& env_;
  Io& io_;
  Extras& extras_;
  // Logs a backend's handshake error once per change, across the workers (or its return to ok).
  static void log_change(const std::string& cluster, const std::string& backend, const char* result,
                         const std::string& why);
};

}  // namespace ringlb::proxy
