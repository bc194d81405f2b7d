// Packs what a completion is about into the 64-bit user_data of its SQE:
//   bits 63..56  op (0 is reserved as invalid, so a zeroed SQE is never mistaken for real work)
//   bits 55..32  index: a connection in the worker, a listener or slot in the acceptor
//   bits 31..0   submit time, microseconds (wraps after 71 minutes; differences stay right)
// The submit time gives each completion's latency without any per-request storage.
#pragma once

#include <cstdint>

namespace ringlb {

enum class Tag : uint8_t {
  kInvalid = 0,
  // Worker.
  kHandoff,         // a client descriptor arrived from the acceptor (msg_ring)
  kControl,         // a message from the acceptor: index kControlDrain or kControlDiagnostics
  kLostHandoff,     // a hand-off whose completion was lost; index = its listener
  kAuditProbe,      // getsockopt(SO_DOMAIN) on a slot no connection holds; index = the slot
  kTick,            // periodic timer: idle timeouts, drain deadline
  kQueuePoll,       // short timer while clients are queued: room made by other workers
  // A session's completions (server/proxy). Each tag is named for the one phase that handles
  // it (server/proxy/tags.h: phase_of), so the code for any completion is found in one step.
  kAdmitPeerName,       // admit.cc: getsockopt(SO_PEERNAME) on the client
  kProxyHeaderPeek,     // inspect_proxy.cc: a peek at the client's bytes for its PROXY header
  kProxyHeaderConsume,  // inspect_proxy.cc: the header's bytes (and only those) taken off the socket
  kHelloPeek,           // inspect_tls.cc: a peek at the client's bytes for its TLS ClientHello
  kTlsAcceptRecv,       // tls_accept.cc: the client's handshake records
  kTlsAcceptSend,       // tls_accept.cc: ours to the client
  kRoutePeerName,       // route.cc: the client's address, when its cluster (picked by SNI) needs it
  kConnectSocket,       // connect.cc: socket_direct_alloc for the backend side
  kConnect,             // connect.cc: the connect (its linked timeout is kQuietConnectTimeout)
  kConnectProxyHeader,  // connect.cc: a send-proxy header, before any client byte
  kTlsConnectRecv,      // tls_connect.cc: the backend's handshake records
  kTlsConnectSend,      // tls_connect.cc: ours to the backend
  kPumpRecvClient,      // pump.cc
  kPumpRecvBackend,
  kPumpSendClient,      // bytes written to the client
  kPumpSendBackend,     // bytes written to the backend
  kPumpShutdown,        // a FIN passed on (SHUT_WR)
  kPumpCancel,          // a multishot recv stopped for back-pressure
  kSessionCancel,       // driver.cc: the close's cancel of everything on a slot
  // "Quiet" ops are submitted with IOSQE_CQE_SKIP_SUCCESS (but for a sample that feeds the latency
  // histograms): their completions never refer back to a connection, which may be gone by then.
  kQuietSockopt,
  // The linked timeout of a connect. Cancelled (the connect finished first) it posts nothing;
  // fired, it posts -ETIME, and the connect it cancelled reports the failure.
  kQuietConnectTimeout,
  kQuietMessage,    // a msg_ring to another ring whose success needs no completion
  kQuietClose,
  // Health checker.
  kCheckTick,
  kCheckSocket,
  kCheckConnect,
  kCheckSend,       // bytes of a check: a send-proxy LOCAL header, a request, TLS records
  kCheckRecv,       // a check's reply (TLS records under tls/https)
  kCheckTimeout,
  // Acceptor.
  kAccept,
  kMsgRing,
  kQuietCloseAccepted,
  kSignal,
  kDrainNotify,
  kControlAccept,   // a client on the control socket
  kControlRecv,
  kInstall,         // fixed_fd_install of a listener for a takeover
  kDiagDone,        // a worker finished its diagnostics (msg_ring from the worker)
  kDiagRequest,     // our msg_ring asking a worker for diagnostics: a completion means it failed
  kControlSend,     // part of the "connections" answer sent to the control client
  kControlSendTimeout,  // the deadline linked to a kControlSend
  kControlRecvTimeout,  // the deadline linked to a kControlRecv
  // kLostHandoff to a worker, linked behind a hand-off that was sent without its completion;
  // index = our slot. Only a failure posts a completion.
  kLostHandoffChained,
  kLostHandoffMessage,  // kLostHandoff sent on its own; index = its entry in the pending list
  kStatusRequest,   // the status API's eventfd: it asks for a round of diagnostics
  // Worker diagnostics.
  kDiagInstall,
};

constexpr uint64_t kIndexMask = (1ULL << 24) - 1;
constexpr uint32_t kControlDrain = 0;
constexpr uint32_t kControlDiagnostics = 1;

constexpr uint64_t encode(Tag tag, uint32_t index, uint32_t time_us) {
  return (static_cast<uint64_t>(tag) << 56) | ((static_cast<uint64_t>(index) & kIndexMask) << 32) |
         time_us;
}
constexpr Tag tag_of(uint64_t data) { return static_cast<Tag>(data >> 56); }
constexpr uint32_t index_of(uint64_t data) { return static_cast<uint32_t>((data >> 32) & kIndexMask); }
constexpr uint32_t time_of(uint64_t data) { return static_cast<uint32_t>(data); }

}  // namespace ringlb
