// The pump's TLS side (pump.h): decrypting what a TLS side sends, encrypting what goes to one.
#include <cerrno>
#include <cstring>

#include "server/proxy/pump.h"

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;

Tag send_tag(Dir dir) { return dir == kUp ? Tag::kPumpSendBackend : Tag::kPumpSendClient; }

}  // namespace

TlsSide* Pump::source_tls(Session& s, Dir dir) {
  if (dir == kUp ? !s.tls_client : !s.tls_backend) return nullptr;
  TlsLink* link = extras_.tls(s.id);
  return dir == kUp ? &link->client : &link->backend;
}

TlsSide* Pump::sink_tls(Session& s, Dir dir) {
  if (dir == kUp ? !s.tls_backend : !s.tls_client) return nullptr;
  TlsLink* link = extras_.tls(s.id);
  return dir == kUp ? &link->backend : &link->client;
}

Step Pump::decrypted(Session& s, Dir dir, int32_t buf, uint32_t cqe_flags) {
  tls::Stream& stream = *source_tls(s, dir)->stream;
  // The stream reads the ciphertext where it lies; the plaintext goes to scratch first, since in
  // the recv's own buffer it could land on a record not read yet (one begun in the last recv
  // decrypts to more than its part here), and back into that buffer once the rest is set aside.
  const size_t cap = env_.config.buffer_size;
  if (scratch_.size() < cap) scratch_.resize(cap);
  size_t produced = 0;
  ssize_t r = tls::Stream::kWant;
  while (produced < cap) {
    r = stream.read(scratch_.data() + produced, cap - produced);
    if (r <= 0) break;
    produced += static_cast<size_t>(r);
  }
  stream.release_input();
  if (produced > 0) memcpy(io_.buffer(buf), scratch_.data(), produced);
  // Reading may have made the stream answer its peer (a key update): sent by the other flow.
  const Dir back = dir == kUp ? kDown : kUp;
  if (!s.flow[back].sending && stream.pending_output() > 0 && !send_tls(s, back)) {
    io_.release(buf);
    return Step::close(CloseReason::k_tls_protocol);
  }
  if (r == tls::Stream::kError) {
    io_.release(buf);
    return Step::close(CloseReason::k_tls_protocol);
  }
  if (produced == 0) {
    io_.release(buf);
    if (r == tls::Stream::kEof) return source_eof(s, dir);
    maybe_arm(s, dir);  // a record in pieces, or only a ticket: receive on
    return Step::wait();
  }
  Flow& flow = s.flow[dir];
  if (r == tls::Stream::kEof) flow.eof_pending = true;  // no recv past the close_notify
  const Step step = received(s, dir, buf, static_cast<uint32_t>(produced), cqe_flags);
  if (step.kind != Step::Kind::kWait) return step;
  if (r == tls::Stream::kEof && flow.queued == 0 && !flow.sending) {
    flow.eof_pending = false;
    return forward_eof(s, dir);
  }
  return step;
}

bool Pump::send_tls(Session& s, Dir dir) {
  Flow& flow = s.flow[dir];
  TlsSide& sink = *sink_tls(s, dir);
  if (flow.sending) return true;
  // Plaintext from the chain into the stream, while it holds less than a chunk of ciphertext:
  // a buffer goes back as soon as its bytes are in the stream.
  while (flow.queued > 0 && !sink.shut && sink.stream->pending_output() < kTlsChunk) {
    const ssize_t n = sink.stream->write(io_.buffer(flow.buf) + flow.off, flow.len - flow.off);
    if (n < 0) return false;
    if (n == 0) break;
    flow.off += static_cast<uint32_t>(n);
    if (flow.off == flow.len) io_.release(dequeue(flow));
  }
  if (sink.take_output() == 0) return true;
  flow.sending = true;
  io_.send(s, dir, send_tag(dir), sink.tx.data(), sink.tx_len);
  return true;
}

Step Pump::on_tls_sent(Session& s, Dir dir, int res) {
  Flow& flow = s.flow[dir];
  TlsSide& sink = *sink_tls(s, dir);
  flow.sending = false;
  if (res <= 0) return Step::close(close_reason_for(res));
  s.last_active_ns = env_.now_ns;
  if (!sink.sent(static_cast<uint32_t>(res))) {  // short write: the rest, in order
    flow.sending = true;
    io_.send(s, dir, send_tag(dir), sink.tx.data() + sink.tx_off, sink.tx_len - sink.tx_off);
    return Step::wait();
  }
  if (!send_tls(s, dir)) return Step::close(CloseReason::k_tls_protocol);
  if (flow.sending) return Step::wait();
  if (flow.eof_pending && flow.queued == 0) return forward_eof(s, dir);
  maybe_arm(s, dir);
  return Step::wait();
}

bool Pump::tls_goodbye(Session& s, Dir dir) {
  TlsSide* sink = sink_tls(s, dir);
  if (sink == nullptr) return false;
  if (!sink->shut) {
    sink->shut = true;
    sink->stream->shutdown_write();
    if (!s.flow[dir].sending) send_tls(s, dir);
  }
  return s.flow[dir].sending;
}

}  // namespace ringlb::proxy
