#include "server/proxy/session.h"

#include <cerrno>

namespace ringlb::proxy {

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::kFree: return "free";
    case Phase::kAdmit: return "admit";
    case Phase::kProxyHeader: return "proxy_header";
    case Phase::kClientHello: return "client_hello";
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
