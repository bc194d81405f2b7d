#include "server/proxy/tls_connect.h"

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "server/base/log.h"
#include "server/proxy/connect.h"
#include "server/proxy/snapshot_ref.h"
#include "server/proxy/tls_accept.h"

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;
using metrics::TlsResult;

TlsResult result_of(tls::Failure f) {
  switch (f) {
    case tls::Failure::kHandshakeTimeout: return TlsResult::k_tls_handshake_timeout;
    case tls::Failure::kNoCertificate: return TlsResult::k_tls_no_certificate;
    case tls::Failure::kBadCertificate: return TlsResult::k_tls_bad_certificate;
    default: return TlsResult::k_tls_protocol;
  }
}

const balancer::BackendSpec& spec_of(const Session& s) {
  return s.snap->snapshot->backends[static_cast<size_t>(s.backend_index)];
}

}  // namespace

void TlsConnect::log_change(const std::string& cluster, const std::string& backend, const char* result,
                            const std::string& why) {
  // A slow path (a failed handshake, or the first good one after failures): one lock is fine.
  static std::mutex mu;
  static std::map<std::string, std::string> last;  // by "cluster/backend": the error logged
  const std::string key = cluster + "/" + backend;
  std::lock_guard<std::mutex> lock(mu);
  auto it = last.find(key);
  if (why.empty()) {
    if (it == last.end()) return;
    last.erase(it);
    log(LogLevel::kInfo, "tls: backend %s: handshakes succeed again", key.c_str());
    return;
  }
  if (it != last.end() && it->second == why) return;
  last[key] = why;
  log(LogLevel::kWarning, "tls: backend %s: %s: %s", key.c_str(), result, why.c_str());
}

std::string TlsConnect::verify_name(const Session& s) const {
  const TlsLink& link = *extras_.tls(s.id);
  if (!link.origin->config().sni.empty()) return link.origin->config().sni;
  // The backend as written: HOST:PORT, [IPv6]:PORT; its host is what its certificate names.
  std::string host = spec_of(s).name;
  if (const size_t colon = host.rfind(':'); colon != std::string::npos) host.resize(colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return host;
}

Step TlsConnect::start(Session& s) {
  TlsLink& link = *extras_.tls(s.id);
  tls::ClientOptions options;
  options.backend = s.backend_id;
  options.verify_name = verify_name(s);
  link.backend = TlsSide{};
  link.backend.stream = std::make_unique<tls::Stream>(link.origin, options);
  if (!link.backend.stream->ok()) return Step::close(CloseReason::k_error);
  s.tls_backend = true;
  link.backend.stream->handshake();  // the ClientHello
  return advance(s);
}

void TlsConnect::recv(Session& s) {
  RecvSpec spec;
  spec.len = env_.config.buffer_size - kTlsRecordRoom;
  io_.recv(s, kDown, Tag::kTlsConnectRecv, spec);
}

Step TlsConnect::on_buffer(Session& s) {
  recv(s);
  return Step::wait();
}

Step TlsConnect::on_completion(Session& s, const Completion& c) {
  if (static_cast<Tag>(c.tag) == Tag::kTlsConnectRecv) return on_recv(s, c);
  return on_send(s, c.res);
}

Step TlsConnect::on_recv(Session& s, const Completion& c) {
  TlsSide& side = extras_.tls(s.id)->backend;
  if (c.res == -ENOBUFS) {
    if (!io_.wait_for_buffer(s, kDown)) recv(s);
    return Step::wait();
  }
  if (c.res < 0) {
    io_.release(c.buf);
    return failed(s, TlsResult::k_tls_protocol, std::string("recv: ") + strerror(-c.res));
  }
  tls::Stream& stream = *side.stream;
  if (c.res == 0) {
    stream.feed_eof();
  } else {
    stream.feed(io_.buffer(c.buf), static_cast<size_t>(c.res));
  }
  stream.handshake();
  if (stream.handshake_done() && stream.unread_input() > 0) {
    side.held = c.buf;  // the backend spoke right behind its Finished: the pump reads it first
  } else {
    stream.release_input();
    io_.release(c.buf);
  }
  return advance(s);
}

Step TlsConnect::on_send(Session& s, int res) {
  TlsSide& side = extras_.tls(s.id)->backend;
  if (res <= 0) return failed(s, TlsResult::k_tls_protocol, std::string("send: ") + strerror(res < 0 ? -res : EPIPE));
  if (!side.sent(static_cast<uint32_t>(res))) {
    io_.send(s, kUp, Tag::kTlsConnectSend, side.tx.data() + side.tx_off, side.tx_len - side.tx_off);
    return Step::wait();
  }
  return advance(s);
}

Step TlsConnect::advance(Session& s) {
  TlsLink& link = *extras_.tls(s.id);
  TlsSide& side = link.backend;
  tls::Stream& stream = *side.stream;
  if (stream.failure() != tls::Failure::kNone) {
    // An alert to the backend is not worth waiting for: it is closed, and another one tried.
    return failed(s, result_of(stream.failure()), stream.error());
  }
  if (!side.sending() && side.take_output() > 0) {
    io_.send(s, kUp, Tag::kTlsConnectSend, side.tx.data(), side.tx_len);
    return Step::wait();
  }
  if (side.sending()) return Step::wait();
  if (!stream.handshake_done()) {
    recv(s);
    return Step::wait();
  }
  log_change(link.origin->cluster(), spec_of(s).name, "ok", "");
  return Step::to(Phase::kPump);
}

Step TlsConnect::failed(Session& s, TlsResult result, const std::string& why) {
  TlsLink& link = *extras_.tls(s.id);
  if (link.cluster_counters != nullptr) link.cluster_counters->failed(result);
  link.origin->forget(s.backend_id);  // its next connection is a full handshake
  log_change(link.origin->cluster(), spec_of(s).name, metrics::tls_result_name(result), why);
  // As a refused connect: counted, passive health, the socket closed, the next backend tried.
  env_.stats.backends[s.backend_id].connect_failures.add();
  connect_failed(env_, s);
  io_.close_backend(s);
  link.backend = TlsSide{};
  s.tls_backend = false;
  return Step::to(Phase::kConnect);
}

void TlsConnect::on_close(Session& s, CloseReason reason) {
  const TlsLink* link = extras_.tls(s.id);
  if (link == nullptr || link->cluster_counters == nullptr) return;
  if (reason == CloseReason::k_drain || reason == CloseReason::k_max_duration) return;
  link->cluster_counters->failed(reason == CloseReason::k_connect_failed ? TlsResult::k_tls_handshake_timeout
                                                                          : TlsResult::k_tls_protocol);
}

}  // namespace ringlb::proxy
