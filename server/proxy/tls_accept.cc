#include "server/proxy/tls_accept.h"

#include <cerrno>

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;
using metrics::TlsResult;

TlsResult result_of(CloseReason r) {
  switch (r) {
    case CloseReason::k_tls_handshake_timeout: return TlsResult::k_tls_handshake_timeout;
    case CloseReason::k_tls_no_certificate: return TlsResult::k_tls_no_certificate;
    case CloseReason::k_tls_bad_certificate: return TlsResult::k_tls_bad_certificate;
    default: return TlsResult::k_tls_protocol;
  }
}

}  // namespace

CloseReason tls_close_reason(tls::Failure f) {
  switch (f) {
    case tls::Failure::kHandshakeTimeout: return CloseReason::k_tls_handshake_timeout;
    case tls::Failure::kNoCertificate: return CloseReason::k_tls_no_certificate;
    case tls::Failure::kBadCertificate: return CloseReason::k_tls_bad_certificate;
    case tls::Failure::kProtocol:
    case tls::Failure::kNone: break;
  }
  return CloseReason::k_tls_protocol;
}

metrics::TlsListenerCounters* TlsAccept::counters(const Session& s) {
  if (counters_.size() <= s.listener) counters_.resize(s.listener + 1u, nullptr);
  metrics::TlsListenerCounters*& c = counters_[s.listener];
  // The listener's name is fixed for its index, so its counters are found once per worker.
  if (c == nullptr) c = env_.shared.registry->tls->listener(env_.shared.routes[s.listener].name, env_.worker);
  return c;
}

Step TlsAccept::start(Session& s) {
  const ListenerPolicy& policy = snapshots_.policy(s.listener);
  if (!policy.tls) return Step::close(CloseReason::k_error);  // a reload turned it off: see same_listener
  TlsLink& link = extras_.make_tls(s.id);
  link.client.stream = std::make_unique<tls::Stream>(policy.tls->worker(env_.worker));
  if (!link.client.stream->ok()) return Step::close(CloseReason::k_error);
  s.tls_client = true;
  link.listener_counters = counters(s);
  link.handshake_start_ns = env_.now_ns;
  s.flow[kUp].expect_data = true;  // a TLS client speaks first, at once
  recv(s);
  return Step::wait();
}

void TlsAccept::recv(Session& s) {
  RecvSpec spec;
  spec.len = env_.config.buffer_size - kTlsRecordRoom;
  io_.recv(s, kUp, Tag::kTlsAcceptRecv, spec);
}

Step TlsAccept::on_buffer(Session& s) {
  recv(s);
  return Step::wait();
}

Step TlsAccept::on_completion(Session& s, const Completion& c) {
  if (static_cast<Tag>(c.tag) == Tag::kTlsAcceptRecv) return on_recv(s, c);
  return on_send(s, c.res);
}

Step TlsAccept::on_recv(Session& s, const Completion& c) {
  TlsSide& side = extras_.tls(s.id)->client;
  if (c.res == -ENOBUFS) {
    if (!io_.wait_for_buffer(s, kUp)) recv(s);
    return Step::wait();
  }
  if (c.res < 0) {
    io_.release(c.buf);
    return Step::close(close_reason_for(c.res));
  }
  tls::Stream& stream = *side.stream;
  if (c.res == 0) {
    stream.feed_eof();  // a client gone mid-handshake: truncated
  } else {
    stream.feed(io_.buffer(c.buf), static_cast<size_t>(c.res));
  }
  stream.handshake();
  if (stream.handshake_done() && stream.unread_input() > 0) {
    side.held = c.buf;  // records right behind its Finished: the pump reads them first
  } else {
    stream.release_input();
    io_.release(c.buf);
  }
  return advance(s);
}

Step TlsAccept::on_send(Session& s, int res) {
  TlsSide& side = extras_.tls(s.id)->client;
  if (res <= 0) return Step::close(close_reason_for(res));
  if (!side.sent(static_cast<uint32_t>(res))) {
    io_.send(s, kDown, Tag::kTlsAcceptSend, side.tx.data() + side.tx_off, side.tx_len - side.tx_off);
    return Step::wait();
  }
  return advance(s);
}

Step TlsAccept::advance(Session& s) {
  TlsSide& side = extras_.tls(s.id)->client;
  tls::Stream& stream = *side.stream;
  // Whatever the stream has to say goes first: a flight, tickets, or an alert before closing.
  if (!side.sending() && side.take_output() > 0) {
    io_.send(s, kDown, Tag::kTlsAcceptSend, side.tx.data(), side.tx_len);
    return Step::wait();
  }
  if (side.sending()) return Step::wait();
  if (stream.failure() != tls::Failure::kNone) return Step::close(tls_close_reason(stream.failure()));
  if (stream.handshake_done()) return done(s);
  recv(s);
  return Step::wait();
}

Step TlsAccept::done(Session& s) {
  TlsLink& link = *extras_.tls(s.id);
  const tls::Stream& stream = *link.client.stream;
  if (metrics::TlsListenerCounters* c = link.listener_counters) {
    c->handshake(TlsResult::k_ok);
    if (stream.resumed()) c->resumed.add();
    if (env_.config.metrics_enabled) c->handshake_time.observe_ns(env_.now_ns - link.handshake_start_ns);
  }
  if (!stream.server_name().empty()) {
    extras_.server_name(s.id).assign(stream.server_name(), 0, kMaxServerName);
    s.has_server_name = true;
  }
  if (stream.peer_certificate()) link.client_cn = stream.peer_cn();
  s.last_active_ns = env_.now_ns;
  return Step::to(Phase::kRoute);
}

void TlsAccept::on_close(Session& s, CloseReason reason) {
  const TlsLink* link = extras_.tls(s.id);
  if (link == nullptr || link->listener_counters == nullptr) return;
  // A drain or the connection's maximum duration is no fault of the handshake's.
  if (reason == CloseReason::k_drain || reason == CloseReason::k_max_duration) return;
  link->listener_counters->handshake(result_of(reason));
}

}  // namespace ringlb::proxy
