// The ClientHello phase of an SNI listener: peeks at the client's first bytes until its TLS
// ClientHello is whole (protocol/client_hello.h), keeps its server name for the route phase and
// the access log, and leaves every byte in the socket for the backend. It waits for the rest of
// a hello in pieces with SO_RCVLOWAT, so the socket turns readable only once it has arrived.
#pragma once

#include <cstdint>
#include <vector>

#include "server/proxy/env.h"
#include "server/proxy/io.h"
#include "server/proxy/session.h"

namespace ringlb::proxy {

class InspectTls {
 public:
  InspectTls(Env& env, Io& io, Extras& extras) : env_(env), io_(io), extras_(extras) {}
  InspectTls(const InspectTls&) = delete;
  InspectTls& operator=(const InspectTls&) = delete;

  Step start(Session& s);
  Step on_completion(Session& s, const Completion& c);  // kHelloPeek
  Step on_buffer(Session& s);  // the peek waited for a buffer

 private:
  void peek(Session& s);
  // The hello is `bytes` long and not all here: peek again once that much is in the socket.
  void wait_for(Session& s, uint32_t bytes);
  uint32_t peek_limit() const;

  Env& env_;
  Io& io_;
  Extras& extras_;
  // By session id, sized on first use: bytes seen by its last peek, and its SO_RCVLOWAT (which
  // the kernel reads from here when the request runs: it must stay put).
  std::vector<uint32_t> seen_;
  std::vector<int> lowat_;
};

}  // namespace ringlb::proxy
