// Which phase handles each of a session's completion tags (server/uring/user_data.h), and what a
// completion carries: the one table the driver dispatches by.
#pragma once

#include <cstdint>

#include "server/proxy/session.h"
#include "server/uring/user_data.h"

namespace ringlb::proxy {

// The phase whose code handles a completion with `tag`; kFree for a tag that is not a
// session's, kClosing for the driver's own (the close's cancels).
constexpr Phase phase_of(Tag tag) {
  switch (tag) {
    case Tag::kAdmitPeerName: return Phase::kAdmit;
    case Tag::kProxyHeaderPeek:
    case Tag::kProxyHeaderConsume: return Phase::kProxyHeader;
    case Tag::kHelloPeek: return Phase::kClientHello;
    case Tag::kTlsAcceptRecv:
    case Tag::kTlsAcceptSend: return Phase::kTlsAccept;
    case Tag::kTlsConnectRecv:
    case Tag::kTlsConnectSend: return Phase::kTlsConnect;
    case Tag::kRoutePeerName: return Phase::kRoute;
    case Tag::kConnectSocket:
    case Tag::kConnect:
    case Tag::kConnectProxyHeader: return Phase::kConnect;
    case Tag::kPumpRecvClient:
    case Tag::kPumpRecvBackend:
    case Tag::kPumpSendClient:
    case Tag::kPumpSendBackend:
    case Tag::kPumpShutdown:
    case Tag::kPumpCancel: return Phase::kPump;
    case Tag::kSessionCancel: return Phase::kClosing;
    default: return Phase::kFree;
  }
}

constexpr bool is_session_tag(Tag tag) { return phase_of(tag) != Phase::kFree; }

// The flow whose recv a completion with `tag` ends, whose buffer (granted or provided) it
// carries; -1 for a tag that is no recv into a buffer.
constexpr int recv_dir_of(Tag tag) {
  switch (tag) {
    case Tag::kProxyHeaderPeek:
    case Tag::kHelloPeek:
    case Tag::kTlsAcceptRecv:
    case Tag::kPumpRecvClient: return kUp;
    case Tag::kTlsConnectRecv:
    case Tag::kPumpRecvBackend: return kDown;
    default: return -1;
  }
}

// In a session's user_data index (24 bits): the session in the low 16, its generation in the
// high 8. A worker holds at most 65535 sessions (its table of 2 per session is capped far lower
// by the open-file limit anyway).
inline constexpr uint32_t kSessionBits = 16;
inline constexpr uint32_t kMaxSessions = (1u << kSessionBits) - 1;
constexpr uint32_t session_of(uint32_t index) { return index & ((1u << kSessionBits) - 1); }
constexpr uint8_t gen_of(uint32_t index) { return static_cast<uint8_t>(index >> kSessionBits); }
constexpr uint32_t session_index(uint32_t id, uint8_t gen) { return id | (uint32_t{gen} << kSessionBits); }

}  // namespace ringlb::proxy
