// The connect phase (HAProxy's connect_server, Envoy's TcpConnPool): picks a backend not yet
// tried, makes a direct socket, connects with a linked timeout, tries another backend on refusal
// or timeout, waits in the maxconn queue while every backend that is up is full, and writes a
// send-proxy header before any client byte. Then the pump takes over.
#pragma once

#include <cstdint>
#include <vector>

#include "server/protocol/proxy_protocol.h"
#include "server/proxy/env.h"
#include "server/proxy/io.h"
#include "server/proxy/session.h"

namespace ringlb::proxy {

// Counts (or uncounts) the session in its backend's active connections: from the pick on, so
// that leastconn sees connections still being set up.
void count_backend(Session& s, bool on);
// A connect to the session's backend failed (refused, timed out, or its TLS handshake): it is
// uncounted, and with checks running, enough failures in a row take the backend down.
void connect_failed(Env& env, Session& s);

class Connect {
 public:
  Connect(Env& env, Io& io, Extras& extras) : env_(env), io_(io), extras_(extras) {}
  Connect(const Connect&) = delete;
  Connect& operator=(const Connect&) = delete;

  Step start(Session& s);
  // kConnectSocket, kConnect, kConnectProxyHeader.
  Step on_completion(Session& s, const Completion& c);
  // Its socket found the table full (Step::after_batch): this batch's closes have run now.
  Step retry(Session& s);
  // Its turn in the maxconn queue came (room at a backend).
  Step on_dequeued(Session& s);

 private:
  // A PROXY protocol header on its way to the backend.
  struct ProxyHeader {
    char bytes[kMaxProxyHeader];
    uint8_t len = 0;
    uint8_t off = 0;
  };

  // Picks a backend not yet tried and starts connecting; queues the session when only full
  // backends are left, or closes it when there is none.
  Step pick(Session& s);
  Step on_socket(Session& s, int res);
  Step on_connect(Session& s, int res);
  Step on_proxy_header(Session& s, int res);
  // Connected (and any send-proxy header sent): TLS to the backend first, or the pump.
  Step connected(Session& s) const;
  Step send_proxy_header(Session& s, ProxyProtocol version);
  void send_rest(Session& s);

  Env& env_;
  Io& io_;
  Extras& extras_;
  std::vector<ProxyHeader> proxy_headers_;  // by session, sized on first use (send-proxy)
};

}  // namespace ringlb::proxy
