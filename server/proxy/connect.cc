#include "server/proxy/connect.h"

#include <cerrno>

#include "server/base/log.h"
#include "server/proxy/snapshot_ref.h"
#include "server/proxy/tls_link.h"

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;

// Tries of socket_direct_alloc that found the table full (-ENFILE), before the client is closed.
constexpr uint8_t kSocketRetries = 3;

const balancer::BackendSpec& spec_of(const Session& s) {
  return s.snap->snapshot->backends[static_cast<size_t>(s.backend_index)];
}

}  // namespace

void count_backend(Session& s, bool on) {
  if (s.counted == on || s.backend_index < 0) return;
  s.counted = on;
  spec_of(s).state->active.fetch_add(on ? 1 : -1, std::memory_order_relaxed);
}

Step Connect::start(Session& s) { return pick(s); }

Step Connect::connected(Session& s) const {
  const TlsLink* link = extras_.tls(s.id);
  return Step::to(link != nullptr && link->origin ? Phase::kTlsConnect : Phase::kPump);
}

Step Connect::on_dequeued(Session& s) { return pick(s); }

Step Connect::pick(Session& s) {
  // The cluster's own settings, from the snapshot this client picks from.
  const balancer::Snapshot& cluster = *s.snap->snapshot;
  const int b = s.attempts < cluster.connect_attempts ? s.snap->picker->pick(s.key_hash, s.tried) : -1;
  if (b < 0) {
    // Full backends not yet tried are worth waiting for (HAProxy's maxconn queue), also after
    // another backend refused.
    if (s.attempts < cluster.connect_attempts && cluster.queue_timeout_ms > 0 && !env_.draining &&
        s.snap->picker->waiting_helps(s.tried)) {
      io_.enqueue(s);
      return Step::wait();
    }
    return Step::close(s.attempts == 0 ? CloseReason::k_no_backend : CloseReason::k_connect_failed);
  }
  const balancer::BackendSpec& spec = cluster.backends[static_cast<size_t>(b)];
  s.backend_index = b;
  s.backend_id = spec.id;
  if (b < 64) s.tried |= 1ULL << b;
  ++s.attempts;
  count_backend(s, true);
  env_.stats.backends[spec.id].connect_attempts.add();
  s.connect_start_ns = env_.now_ns;
  io_.open_socket(s, env_.shared.backend_addresses[s.backend_id].family());
  return Step::wait();
}

Step Connect::on_completion(Session& s, const Completion& c) {
  switch (static_cast<Tag>(c.tag)) {
    case Tag::kConnectSocket: return on_socket(s, c.res);
    case Tag::kConnect: return on_connect(s, c.res);
    case Tag::kConnectProxyHeader: return on_proxy_header(s, c.res);
    default: return Step::close(CloseReason::k_error);
  }
}

Step Connect::on_socket(Session& s, int res) {
  // (The driver took the new slot into s.backend.)
  if (res == -ENFILE && s.socket_retries < kSocketRetries) {
    // The table is full of hand-offs of a burst beyond this worker's capacity, whose closes
    // were prepared in this same batch: try again once they have run.
    ++s.socket_retries;
    return Step::after_batch();
  }
  if (res < 0) return Step::close(CloseReason::k_error);
  // The cluster's connect timeout: the snapshot, which the session holds, keeps it in place.
  io_.connect(s, env_.shared.backend_addresses[s.backend_id], &s.snap->connect_ts);
  return Step::wait();
}

Step Connect::retry(Session& s) {
  io_.open_socket(s, env_.shared.backend_addresses[s.backend_id].family());
  return Step::wait();
}

Step Connect::on_connect(Session& s, int res) {
  metrics::BackendStats& backend = env_.stats.backends[s.backend_id];
  const balancer::BackendSpec& spec = spec_of(s);
  if (res == 0) {
    s.connected_ns = env_.now_ns;
    if (env_.config.metrics_enabled) backend.connect_latency.observe_ns(env_.now_ns - s.connect_start_ns);
    if (spec.state->connect_failures_in_a_row.load(std::memory_order_relaxed) != 0) {
      spec.state->connect_failures_in_a_row.store(0, std::memory_order_relaxed);
    }
    const auto version = static_cast<ProxyProtocol>(spec.proxy_protocol);
    if (version != ProxyProtocol::kNone) return send_proxy_header(s, version);
    return connected(s);
  }
  // Refused, unreachable or timed out (-ECANCELED from the linked timeout): try another backend.
  backend.connect_failures.add();
  connect_failed(env_, s);
  io_.close_backend(s);
  return pick(s);
}

void connect_failed(Env& env, Session& s) {
  count_backend(s, false);
  // Only where checks run, or nothing would bring the backend back.
  const balancer::BackendSpec& spec = spec_of(s);
  if (spec.check_interval_ms == 0) return;
  const uint32_t failures = spec.state->connect_failures_in_a_row.fetch_add(1, std::memory_order_relaxed) + 1;
  if (failures >= spec.fall && spec.state->up.exchange(0, std::memory_order_relaxed)) {
    log(LogLevel::kWarning, "backend %s/%s is down: %u connects failed in a row",
        env.shared.backends.cluster_name(s.cluster).c_str(), spec.name.c_str(), failures);
  }
}

Step Connect::send_proxy_header(Session& s, ProxyProtocol version) {
  // Nothing is read from either side until the header is out, so it precedes every byte. The
  // destination is the listening address: for a wildcard listener that is 0.0.0.0 or ::, since
  // this kernel's socket uring_cmds cannot ask a direct descriptor for its local address.
  if (proxy_headers_.empty()) proxy_headers_.resize(extras_.capacity);
  ProxyHeader& header = proxy_headers_[s.id];
  // Behind another proxy (accept-proxy), the addresses its header named are passed on.
  const sockaddr* dst = s.has_proxied_dst ? reinterpret_cast<const sockaddr*>(&extras_.proxied_dst(s.id))
                                          : env_.shared.listen_bound[s.listener].get();
  const sockaddr* src = reinterpret_cast<const sockaddr*>(&s.peer);
  if (version == ProxyProtocol::kV2 && s.tls_client) {
    // The client's TLS as HAProxy tells it: ALPN, SNI, and an SSL TLV (version, cipher, verify,
    // its certificate's CN, and on request the certificate itself).
    TlsLink& link = *extras_.tls(s.id);
    const ProxyTlvs tlvs = link.client.stream->proxy_tlvs(s.snap->snapshot->proxy_client_certificate);
    link.proxy_header.resize(proxy_v2_size(src, dst, tlvs));
    const size_t n = write_proxy_v2(src, dst, tlvs, link.proxy_header.data(), link.proxy_header.size());
    if (n > 0) {
      link.proxy_header.resize(n);
      link.proxy_header_off = 0;
      send_rest(s);
      return Step::wait();
    }
    link.proxy_header.clear();  // addresses of two families: the plain header says UNKNOWN
  }
  header.len = static_cast<uint8_t>(write_proxy_header(version, src, dst, header.bytes));
  header.off = 0;
  send_rest(s);
  return Step::wait();
}

void Connect::send_rest(Session& s) {
  if (TlsLink* link = extras_.tls(s.id); link != nullptr && !link->proxy_header.empty()) {
    const std::string& h = link->proxy_header;
    io_.send(s, kUp, Tag::kConnectProxyHeader, h.data() + link->proxy_header_off,
             static_cast<uint32_t>(h.size() - link->proxy_header_off));
    return;
  }
  ProxyHeader& header = proxy_headers_[s.id];
  io_.send(s, kUp, Tag::kConnectProxyHeader, header.bytes + header.off, header.len - header.off);
}

Step Connect::on_proxy_header(Session& s, int res) {
  if (res <= 0) return Step::close(close_reason_for(res));
  if (TlsLink* link = extras_.tls(s.id); link != nullptr && !link->proxy_header.empty()) {
    link->proxy_header_off += static_cast<size_t>(res);
    if (link->proxy_header_off < link->proxy_header.size()) {
      send_rest(s);
      return Step::wait();
    }
    std::string().swap(link->proxy_header);
    return connected(s);
  }
  ProxyHeader& header = proxy_headers_[s.id];
  header.off = static_cast<uint8_t>(header.off + res);
  if (header.off < header.len) {  // short write: the rest, in order
    send_rest(s);
    return Step::wait();
  }
  return connected(s);
}

}  // namespace ringlb::proxy
