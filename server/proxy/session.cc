#include "server/proxy/session.h"

#include <cerrno>

#include "server/proxy/tls_link.h"

namespace ringlb::proxy {

Extras::Extras(uint32_t sessions) : capacity(sessions) {}
Extras::~Extras() = default;

TlsLink& Extras::make_tls(uint32_t id) {
  if (tls_links.empty()) tls_links.resize(capacity);
  if (!tls_links[id]) tls_links[id] = std::make_unique<TlsLink>();
  return *tls_links[id];
}

void Extras::drop_tls(uint32_t id) {
  if (id < tls_links.size()) tls_links[id].reset();
}

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::kFree: return "free";
    case Phase::kAdmit: return "admit";
    case Phase::kProxyHeader: return "proxy_header";
    case Phase::kClientHello: return "client_hello";
    case Phase::kTlsAccept: return "tls_accept";
    case Phase::kTlsConnect: return "tls_connect";
    case Phase::kRoute: return "route";
    case Phase::kConnect: return "connect";
    case Phase::kPump: return "pump";
    case Phase::kClosing: return "closing";
  }
  return "?";
}

metrics::CloseReason close_reason_for(int res) {
  return res == -ECONNRESET || res == -EPIPE ? metrics::CloseReason::k_reset : metrics::CloseReason::k_error;
}

}  // namespace ringlb::proxy
