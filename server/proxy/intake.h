// What happens to a client between its hand-off and the choice of a backend (Envoy's listener
// filters): a slot in this worker, its listener's max-connections, the PROXY header of an
// accept-proxy listener (from trusted sources only, when the listener names them), the client's
// address (asked of the socket when Maglev, an ACL, a send-proxy header or the access log needs
// it), the listener's ACL, its per-source limits, and the Maglev key. Then the upstream connector takes over.
#pragma once

#include <array>
#include <cstdint>
#include <unordered_map>

#include "server/protocol/proxy_header_reader.h"
#include "server/proxy/conn.h"

namespace ringlb::worker {
struct Context;
}

namespace ringlb::proxy {

class Intake {
 public:
  explicit Intake(worker::Context& ctx) : ctx_(ctx) {}
  Intake(const Intake&) = delete;
  Intake& operator=(const Intake&) = delete;

  // A client descriptor arrived from the acceptor (res: its slot, or -errno).
  void on_handoff(int res, uint32_t listener, uint32_t stamp_us);
  // accept-proxy: peeks at the client's bytes for its PROXY header (again, when it arrives in
  // pieces), then consumes exactly the header.
  void peek(uint32_t id);
  void on_header_peek(uint32_t id, int res, uint32_t cqe_flags);
  void on_header_consumed(uint32_t id, int res);
  void on_peer_name(uint32_t id, int res);
  // Asks the socket for the client's address when something needs it, then routes (also once
  // the SNI inspector has picked the cluster).
  void identify(uint32_t id);
  // The connection ended: a header still in pieces goes with it.
  void forget(uint32_t id);

 private:
  struct HeaderRead {
    ProxyHeaderReader reader;
    uint32_t consuming = 0;  // bytes the consume recv in flight takes
    bool complete = false;   // the header ends with those bytes
    bool has_addresses = false;
  };

  // The PROXY header (if any) is done: looks at the client's first bytes where the listener
  // routes by them, then identifies.
  void inspect(uint32_t id);
  // getsockopt(SO_PEERNAME); on_peer_name follows.
  void ask_peer_name(uint32_t id);
  // The client's address is asked for first: its cluster, its listener's ACL or the access log
  // need it.
  bool needs_peer_name(const Conn& conn) const;
  // Its listener's per-source limits, once its address is known: 0 and counted in the table,
  // or -EAGAIN and closed for the limit it hit.
  int admit_source(uint32_t id);
  // The client's address is known (or not needed): the ACL, the source limits, the hash key,
  // then a backend.
  void route(uint32_t id);

  worker::Context& ctx_;
  std::unordered_map<uint32_t, HeaderRead> headers_;  // connections reading a PROXY header
  // Header bytes are consumed into this and dropped: its content is never read, so every
  // connection's consume may share it.
  std::array<char, kMaxAcceptedProxyHeader> sink_{};
};

}  // namespace ringlb::proxy
