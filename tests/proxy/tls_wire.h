// A real TLS peer (plain OpenSSL over memory BIOs, tests/tls/stream_pair.h) wired to one slot of
// the fake seam: what the session sends on that slot is delivered to the peer, and what the
// peer has to say answers the session's recv there. The handshake and the records are real;
// only the sockets are not.
#pragma once

#include <optional>
#include <string>

#include "tests/proxy/harness.h"
#include "tests/tls/stream_pair.h"

namespace ringlb::proxy::testing {

class TlsWire {
 public:
  // Requests before `from` (h.mark() when made, by default) are not looked at.
  TlsWire(Harness& h, tls::pki::RawSide& peer, int slot, size_t from)
      : h_(h), peer_(peer), slot_(slot), seen_(from) {}
  TlsWire(Harness& h, tls::pki::RawSide& peer, int slot) : TlsWire(h, peer, slot, h.mark()) {}

  // Moves bytes both ways until neither side has anything more (bounded). Sends are completed
  // whole unless `short_send` is set, which completes the next one with that many bytes.
  void run(int rounds = 50);
  // Delivers the session's new sends on the slot to the peer (completing them) and notes its
  // recv there; answers nothing. True when a send moved.
  bool sync();
  // The session's pending recv on the slot, if it has one not yet answered.
  const std::optional<Request>& pending_recv() {
    sync();
    return recv_;
  }
  // Answers the pending recv with `bytes` ("" is EOF), bypassing the peer.
  void answer(const std::string& bytes);
  // Fails the pending recv with `res`.
  void fail_recv(int res);
  // Fails the next send on the slot with `res` (a negative errno, or 0) instead of delivering it.
  void fail_next_send(int res) { fail_send_ = res; }
  std::optional<int> short_send;
  size_t sends = 0;     // sends delivered to the peer
  size_t shutdowns = 0; // shutdown_write requests on the slot

 private:
  Harness& h_;
  tls::pki::RawSide& peer_;
  int slot_;
  size_t seen_;
  std::optional<Request> recv_;
  std::optional<int> fail_send_;
};

}  // namespace ringlb::proxy::testing
