#include "server/proxy/inspect_tls.h"

#include <algorithm>
#include <span>

#include "server/protocol/client_hello.h"
#include "server/proxy/peek.h"

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;

// SO_RCVLOWAT back to the default once inspected: the pump's recvs take whatever has arrived.
const int kDefaultLowat = 1;

}  // namespace

uint32_t InspectTls::peek_limit() const {
  return static_cast<uint32_t>(std::min<size_t>(protocol::kMaxClientHello, env_.config.buffer_size));
}

Step InspectTls::start(Session& s) {
  if (seen_.empty()) {
    seen_.resize(extras_.capacity);
    lowat_.resize(extras_.capacity);
  }
  seen_[s.id] = 0;
  lowat_[s.id] = kDefaultLowat;
  s.flow[kUp].expect_data = true;  // a TLS client speaks first, at once
  peek(s);
  return Step::wait();
}

void InspectTls::peek(Session& s) {
  RecvSpec spec;
  spec.peek = true;
  spec.len = peek_limit();
  io_.recv(s, kUp, Tag::kHelloPeek, spec);
}

Step InspectTls::on_buffer(Session& s) {
  peek(s);
  return Step::wait();
}

void InspectTls::wait_for(Session& s, uint32_t bytes) {
  s.flow[kUp].expect_data = false;  // poll first: readable only at the new low-water mark
  if (lowat_[s.id] != static_cast<int>(bytes)) {
    lowat_[s.id] = static_cast<int>(bytes);
    // Linked: the peek must not be polled for before the mark is set. If setting it fails, the
    // peek fails with -ECANCELED and the client is closed.
    io_.set_recv_lowat(s, &lowat_[s.id], true);
  }
  peek(s);
}

Step InspectTls::on_completion(Session& s, const Completion& c) {
  Step step;
  bool retry = false;
  // EOF before a whole ClientHello: not a TLS client, or one that gave up.
  if (!take_peek(io_, s, c, CloseReason::k_bad_client_hello, &step, &retry)) {
    if (retry) peek(s);
    return step;
  }
  const protocol::HelloResult hello = protocol::read_client_hello(
      std::span<const uint8_t>(io_.buffer(c.buf), static_cast<size_t>(c.res)), peek_limit());
  io_.release(c.buf);  // peeked bytes are still in the socket
  if (hello.status == protocol::HelloStatus::kBad) return Step::close(CloseReason::k_bad_client_hello);
  if (hello.status == protocol::HelloStatus::kNeedMore) {
    // The socket turned readable without reaching the mark, so it was the FIN: the hello will
    // never be whole.
    if (static_cast<uint32_t>(c.res) <= seen_[s.id]) return Step::close(CloseReason::k_bad_client_hello);
    seen_[s.id] = static_cast<uint32_t>(c.res);
    wait_for(s, static_cast<uint32_t>(hello.length));
    return Step::wait();
  }
  if (!hello.server_name.empty()) {
    extras_.server_name(s.id).assign(hello.server_name, 0, kMaxServerName);
    s.has_server_name = true;
  }
  if (lowat_[s.id] != kDefaultLowat) {
    // Unlinked: it runs at submission, before any recv of the pump (which needs a backend first).
    io_.set_recv_lowat(s, &kDefaultLowat, false);
    lowat_[s.id] = kDefaultLowat;
  }
  return Step::to(Phase::kRoute);
}

}  // namespace ringlb::proxy
