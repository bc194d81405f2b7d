#include "server/proxy/inspect_proxy.h"

#include <algorithm>
#include <cstring>

#include "server/proxy/admission.h"
#include "server/proxy/peek.h"

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;

}  // namespace

Step InspectProxy::start(Session& s) {
  s.flow[kUp].expect_data = true;  // the proxy in front sends its header at once
  peek(s);
  return Step::wait();
}

void InspectProxy::peek(Session& s) {
  auto it = reads_.find(s.id);
  const size_t limit = it == reads_.end() ? kMaxAcceptedProxyHeader : it->second.reader.peek_limit();
  RecvSpec spec;
  spec.peek = true;
  spec.len = static_cast<uint32_t>(std::min<size_t>(limit, env_.config.buffer_size));
  io_.recv(s, kUp, Tag::kProxyHeaderPeek, spec);
}

Step InspectProxy::on_buffer(Session& s) {
  peek(s);
  return Step::wait();
}

Step InspectProxy::on_completion(Session& s, const Completion& c) {
  if (static_cast<Tag>(c.tag) == Tag::kProxyHeaderPeek) return on_peek(s, c);
  return on_consumed(s, c.res);
}

Step InspectProxy::on_peek(Session& s, const Completion& c) {
  Step step;
  bool retry = false;
  // EOF before a whole header is as bad as a malformed one (HAProxy says the same).
  if (!take_peek(io_, s, c, CloseReason::k_bad_proxy_header, &step, &retry)) {
    if (retry) peek(s);
    return step;
  }
  HeaderRead& h = reads_[s.id];
  ParsedProxyHeader parsed;
  const char* bytes = reinterpret_cast<const char*>(io_.buffer(c.buf));
  const ProxyHeaderReader::Step next = h.reader.on_peek(bytes, static_cast<size_t>(c.res), &parsed);
  io_.release(c.buf);  // peeked bytes are still in the socket
  if (next.next == ProxyHeaderReader::Next::kInvalid) return Step::close(CloseReason::k_bad_proxy_header);
  h.consuming = next.consume;
  h.complete = next.next == ProxyHeaderReader::Next::kComplete;
  if (h.complete && parsed.has_addresses) {
    memcpy(&s.peer, &parsed.src, sizeof(sockaddr_in6));
    memcpy(&extras_.proxied_dst(s.id), &parsed.dst, sizeof(sockaddr_in6));
    s.has_proxied_dst = true;
    s.has_peer = true;
  }
  // Exactly the header's bytes, which the peek showed are there: MSG_WAITALL makes one recv of
  // them whole. The client's data behind them stays in the socket until a backend is connected.
  io_.recv_exact(s, Tag::kProxyHeaderConsume, sink_.data(), next.consume);
  return Step::wait();
}

Step InspectProxy::on_consumed(Session& s, int res) {
  auto it = reads_.find(s.id);
  if (it == reads_.end() || res != static_cast<int>(it->second.consuming)) {
    return Step::close(res <= 0 ? close_reason_for(res) : CloseReason::k_error);
  }
  if (!it->second.complete) {  // a header in pieces: wait for the rest
    peek(s);
    return Step::wait();
  }
  reads_.erase(it);
  return take_client(s);
}

Step InspectProxy::take_client(Session& s) {
  const ListenerPolicy& policy = snapshots_.policy(s.listener);
  const sockaddr* client = reinterpret_cast<const sockaddr*>(&s.peer);
  if (!policy.trusted.empty()) {
    // A trusted proxy's client is held to every rule, as if it had connected itself; with LOCAL
    // or UNKNOWN (no addresses) the client is the proxy itself, asked for at admit.
    if (s.has_peer) {
      const Admitted a = admit_address(policy, client, env_.now_ns, &s.named_source_table, &s.named_source);
      if (!a.ok) return Step::close(a.reason);
    }
  } else if (s.has_proxied_dst && !policy.acl.allows(client)) {
    // Anyone may send a header here, so the limits stay on the socket's peer (admit); a client
    // it names is still held to the ACL.
    return Step::close(CloseReason::k_denied);
  }
  const ListenerRoute& route = env_.shared.routes[s.listener];
  if (route.tls) return Step::to(Phase::kTlsAccept);
  if (route.sni) return Step::to(Phase::kClientHello);
  return Step::to(Phase::kRoute);
}

}  // namespace ringlb::proxy
