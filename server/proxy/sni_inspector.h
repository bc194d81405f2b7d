// The TLS inspector (Envoy's tls_inspector listener filter, nginx's ssl_preread): on a listener
// with SNI routes, peeks at the client's first bytes until its ClientHello is whole, then picks
// the cluster by the server name it asks for (SniRoutes). Nothing is consumed: the ClientHello
// stays in the socket and the pump sends it to the backend as the client sent it. After an
// accept-proxy listener's PROXY header, before the client's address is asked for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ringlb::worker {
struct Context;
}

namespace ringlb::proxy {

// The most bytes of a client's server name kept for the access log.
inline constexpr size_t kMaxServerName = 255;

class SniInspector {
 public:
  explicit SniInspector(worker::Context& ctx) : ctx_(ctx) {}
  SniInspector(const SniInspector&) = delete;
  SniInspector& operator=(const SniInspector&) = delete;

  // The connection's route depends on its ClientHello: peeking starts, under the listener's
  // tls-inspect-timeout.
  void start(uint32_t id);
  // A peek at everything that has arrived (again after waiting for a buffer).
  void peek(uint32_t id);
  void on_peek(uint32_t id, int res, uint32_t cqe_flags);

 private:
  // The most bytes one peek can see: a ClientHello must fit (at most 16 KiB, and one buffer).
  uint32_t peek_limit() const;
  // Peeks again once `bytes` have arrived in all: SO_RCVLOWAT makes the socket readable only
  // then (or at FIN), so the POLL_FIRST peek behind it does not spin on the bytes already seen.
  void wait_for(uint32_t id, uint32_t bytes);

  worker::Context& ctx_;
  // By connection, sized on first use: bytes the last peek saw, and the SO_RCVLOWAT value a
  // setsockopt in flight reads (it must stay put until the SQE is submitted).
  std::vector<uint32_t> seen_;
  std::vector<int> lowat_;
};

}  // namespace ringlb::proxy
