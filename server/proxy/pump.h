// The pump phase (liburing proxy.c's conn_dir): per direction, a recv into a provided buffer,
// then a WRITE_FIXED of those bytes to the other side, then the next recv. A FIN becomes
// shutdown(SHUT_WR) on the other side while the other direction keeps flowing; the session is
// done once both sides sent FIN and every forwarded FIN has completed.
//
// A side that speaks TLS (a terminating listener's client, an originating cluster's backend)
// transforms its bytes (pump_tls.cc): what comes from it is decrypted into the recv's own buffer
// before it joins the chain, and what goes to it is encrypted out of the chain into the side's
// send buffer (tls_link.h), which a plain send takes; its FIN is a close_notify, then the FIN.
#pragma once

#include <cstdint>
#include <vector>

#include "server/proxy/env.h"
#include "server/proxy/io.h"
#include "server/proxy/session.h"
#include "server/proxy/tls_link.h"

namespace ringlb::proxy {

class Pump {
 public:
  Pump(Env& env, Io& io, Extras& extras);
  Pump(const Pump&) = delete;
  Pump& operator=(const Pump&) = delete;

  // The backend is connected (and any send-proxy header written): bytes flow both ways.
  Step start(Session& s);
  // kPumpRecvClient/Backend, kPumpSendClient/Backend, kPumpShutdown, kPumpCancel.
  Step on_completion(Session& s, const Completion& c);
  // Flow `dir` waited for a buffer and got one (Flow::granted), or the ring has some again.
  Step on_buffer(Session& s, Dir dir);
  // The session is being freed: the bytes it never sent go back.
  void release_flows(Session& s);
  // Flow `dir`'s recv was held for its rate limit (rate_limit.h) and may go now: the driver's
  // timer says so at RateLimit::held_until_ns.
  Step on_resume(Session& s, Dir dir);

 private:
  Step on_recv(Session& s, Dir dir, const Completion& c);
  Step on_send(Session& s, Dir dir, int res);
  Step on_shutdown(Session& s);
  // The flow's data recv: multishot (--recv multishot) unless it goes into a granted buffer.
  void arm(Session& s, Dir dir);
  // Arms the flow's recv unless one is armed, it is done, waiting or held, or its chain is full.
  void maybe_arm(Session& s, Dir dir);
  // Rate-limited and the bucket short of a quantum: the recv is held until it has one. True
  // when held.
  bool hold(Session& s, Dir dir);
  // A hold ended (or the session did): its time goes to ringlb_rate_limited_seconds_total.
  void count_held(Session& s, Dir dir);
  // The source sent FIN and every byte before it was sent on: SHUT_WR to the other side.
  Step forward_eof(Session& s, Dir dir);
  // Both sides are done: finished once nothing is in flight.
  Step done_if_both_eof(const Session& s) const;
  void enqueue(Flow& flow, int32_t buf, uint32_t len);
  int32_t dequeue(Flow& flow);  // the head buffer, taken off the chain
  // The flow's next send: the chain's head as it is, or through its sink's TLS. False when the
  // connection is broken (a TLS write failed): close it.
  bool send_head(Session& s, Dir dir);
  // `len` received bytes in `buf` (the recv's own buffer): queued and sent on.
  Step received(Session& s, Dir dir, int32_t buf, uint32_t len, uint32_t cqe_flags);
  // The source sent FIN (or TLS's close_notify): passed on once the bytes before it are sent.
  Step source_eof(Session& s, Dir dir);

  // TLS (pump_tls.cc). The side a flow's bytes come from, and go to, when it speaks TLS.
  TlsSide* source_tls(Session& s, Dir dir);
  TlsSide* sink_tls(Session& s, Dir dir);
  // Ciphertext in `buf` (just received, or held from the handshake) decrypted in its place.
  Step decrypted(Session& s, Dir dir, int32_t buf, uint32_t cqe_flags);
  // Plaintext from the chain into the sink's stream, and its ciphertext sent. False: broken.
  bool send_tls(Session& s, Dir dir);
  Step on_tls_sent(Session& s, Dir dir, int res);
  // The sink's TLS says goodbye (close_notify) before the FIN; true while that is being sent.
  bool tls_goodbye(Session& s, Dir dir);

  Env& env_;
  Io& io_;
  Extras& extras_;
  std::vector<uint8_t> scratch_;  // plaintext decrypted before it goes back into its buffer
  // Per provided buffer, while it sits in a flow's chain: the next buffer and its length.
  std::vector<int32_t> next_;
  std::vector<uint32_t> lens_;
};

}  // namespace ringlb::proxy
