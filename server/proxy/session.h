// One proxied connection from its hand-off to its close: plain data that the driver
// (driver.h) owns and its phases read and write. Each phase is a file of its own that reacts
// to the completions tagged for it (tags.h) and says what comes next with a Step.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "metrics/stats.h"
#include "server/limits/source_table.h"
#include "server/proxy/rate_limit.h"

namespace ringlb::sources {
class SharedSourceTable;  // server/limits/shared_source_table.h
}

namespace ringlb::proxy {

struct SnapshotRef;  // server/proxy/snapshot_ref.h
struct TlsLink;      // server/proxy/tls_link.h

// The phases, in the order a connection goes through them (a phase may be skipped).
//   kAdmit: its listener's max-connections, the socket's peer address, the ACL and per-source
//     limits: before a byte is read.
//   kProxyHeader: an accept-proxy listener's PROXY header.
//   kClientHello: an SNI listener's ClientHello, peeked at for its server name.
//   kTlsAccept: a terminating listener's TLS handshake with the client.
//   kRoute: the cluster (the listener's, or by SNI) and the Maglev key.
//   kConnect: a backend picked, a socket, the connect, retries, the maxconn queue, a send-proxy header.
//   kTlsConnect: an originating cluster's TLS handshake with the backend (a failure tries the next).
//   kPump: bytes both ways, with half-close and back-pressure.
//   kClosing: cancelled; waits for every completion that names it, then the slot is free.
enum class Phase : uint8_t {
  kFree,
  kAdmit,
  kProxyHeader,
  kClientHello,
  kTlsAccept,
  kRoute,
  kConnect,
  kTlsConnect,
  kPump,
  kClosing,
};
const char* phase_name(Phase phase);

enum Dir : uint8_t { kUp = 0, kDown = 1 };  // up: client to backend; down: backend to client

// What a phase says comes next.
struct Step {
  enum class Kind : uint8_t {
    kWait,    // for a completion (or a timer, or a buffer) of this phase
    kNext,    // go to phase `next` now
    kClose,   // close now for `reason`: whatever is in flight is cancelled
    kFinish,  // done: close for `reason` once nothing is in flight any more
    kAfterBatch,  // call the phase's retry() after this batch of completions (its closes have run)
  };
  Kind kind = Kind::kWait;
  Phase next = Phase::kFree;
  metrics::CloseReason reason = metrics::CloseReason::k_error;

  static Step wait() { return {}; }
  static Step to(Phase p) { return {Kind::kNext, p, metrics::CloseReason::k_error}; }
  static Step close(metrics::CloseReason r) { return {Kind::kClose, Phase::kFree, r}; }
  static Step finish(metrics::CloseReason r) { return {Kind::kFinish, Phase::kFree, r}; }
  static Step after_batch() { return {Kind::kAfterBatch, Phase::kFree, metrics::CloseReason::k_error}; }
};

// A completion, as the driver hands it to a phase.
struct Completion {
  uint8_t tag = 0;       // a ringlb::Tag of the phase (tags.h)
  int res = 0;
  uint32_t flags = 0;    // the CQE's flags
  int32_t buf = -1;      // the buffer a recv completed into (the phase must keep or release it)
};

// Why a connection ends when an op on one of its sockets fails with `res` (-errno).
metrics::CloseReason close_reason_for(int res);

// One direction. Bytes received and not yet sent wait in a chain of buffers (the pump keeps each
// buffer's length and successor), oldest first; one send is in flight at a time, from the head.
// The recv stops while the flow holds --flow-buffers buffers (a multishot recv is cancelled), so
// a slow reader stalls only its own connection and memory per direction stays bounded.
struct Flow {
  int32_t buf = -1;      // the head of the chain: its bytes from `off` are being sent
  int32_t tail = -1;
  uint32_t len = 0;      // the head's length
  uint32_t off = 0;
  uint16_t queued = 0;   // buffers in the chain
  int32_t granted = -1;  // a buffer handed to this flow for its next recv (FIFO waiters)
  bool eof = false;      // the source side sent FIN; SHUT_WR goes (or went) to the other side
  bool eof_pending = false;  // FIN seen, but bytes received before it are still being sent
  bool waiting = false;  // queued for a free buffer
  bool recv_armed = false;   // a recv of this flow (multishot or not) is in flight
  bool multishot = false;    // the armed recv is multishot
  bool cancelling = false;   // the armed multishot recv is being cancelled (the chain is full)
  bool sending = false;
  // Bytes are likely waiting at the source (the last recv saw IORING_CQE_F_SOCK_NONEMPTY): recv
  // at once. Otherwise the recv waits for readiness first instead of failing a try.
  bool expect_data = false;
  uint64_t recv_data = 0;    // the armed multishot recv's user_data, to cancel it by
};

struct Session {
  Phase phase = Phase::kFree;
  // Bumped when the slot is freed: completions carry it, so one meant for an earlier client of
  // this slot (possible only after the kernel dropped completions) is recognised and ignored.
  uint8_t gen = 0;
  uint32_t id = 0;               // its index in the driver's table, for good
  bool counted = false;          // counted in its backend's active connections
  bool has_peer = false;         // `peer` holds the client's address
  bool has_proxied_dst = false;  // the driver's proxied_dst(id) holds where the client connected to
  bool has_server_name = false;  // the driver's server_name(id) holds its ClientHello's SNI
  bool listener_counted = false; // counted in SharedState::listener_active of its listener
  bool queued = false;           // kConnect: waiting in the maxconn queue
  bool handshaking = false;      // counted in its listener's handshakes (driver.cc releases it)
  bool finishing = false;        // Step::finish came: closes once nothing is in flight
  bool tls_client = false;       // TLS to the client (terminated): Extras::tls(id).client
  bool tls_backend = false;      // TLS to the backend (originated): Extras::tls(id).backend
  uint8_t socket_retries = 0;    // socket_direct_alloc tries that found the table full
  int client = -1;               // direct slots, -1 when closed
  int backend = -1;
  int backend_index = -1;        // in snap->snapshot->backends
  uint32_t backend_id = 0;       // registry id: stats and shared state
  uint16_t listener = 0;         // the listener index the client came in on
  uint16_t cluster = 0;          // where it goes (registry cluster index); set with snap
  SnapshotRef* snap = nullptr;   // null until its cluster is known
  // The per-source table that admitted it (and its key there), released when it is freed; and
  // the same for the client a trusted proxy's PROXY header named.
  sources::SharedSourceTable* source_table = nullptr;
  sources::SourceKey source;
  sources::SharedSourceTable* named_source_table = nullptr;
  sources::SourceKey named_source;
  sources::SharedSourceTable* handshake_table = nullptr;  // per-source handshakes, keyed by `peer`'s
  sources::SourceKey handshake_source;
  uint64_t key_hash = 0;
  uint32_t attempts = 0;
  uint64_t tried = 0;            // backends already tried for this client (first 64)
  uint32_t inflight = 0;         // completions still to come that name it: the driver's count
  metrics::CloseReason first_eof = metrics::CloseReason::k_error;
  metrics::CloseReason closed_as = metrics::CloseReason::k_error;  // counted when it is freed
  uint16_t timer_key = 0;        // what its deadline was last computed from (driver.cc)
  uint64_t last_active_ns = 0;
  uint64_t phase_ns = 0;         // when it entered its phase
  uint64_t connect_start_ns = 0;
  uint64_t deadline_ns = 0;      // set when a reload removed its backend or listener: the drain
  uint64_t start_ns = 0;
  uint32_t accept_us = 0;        // when the acceptor took it (its clock's low 32 bits)
  uint64_t queued_ns = 0;        // when it entered the queue
  uint64_t queue_wait_ns = 0;    // time spent queued, in all its turns
  uint64_t queue_ticket = 0;     // its entry in the admission queue while queued
  uint64_t connected_ns = 0;     // 0: not connected to a backend
  uint64_t closing_ns = 0;
  uint64_t bytes[2] = {0, 0};    // received from the client (kUp) and from the backend (kDown)
  sockaddr_in6 peer{};           // the client: the socket's peer, or what a PROXY header named
  Flow flow[2];
  // Operator features, apart from the phases' state: bandwidth limits by direction (rate_limit.h;
  // the pump's), and when the next interim access-log record is due (driver.cc; 0: none).
  RateLimit rate[2];
  uint64_t next_update_ns = 0;

  bool half_closed() const { return flow[kUp].eof || flow[kDown].eof; }
};

// What a few sessions have and most do not, by session id, sized on first use.
struct Extras {
  explicit Extras(uint32_t sessions);
  // Where an accept-proxy client connected to (its header's destination).
  sockaddr_in6& proxied_dst(uint32_t id) {
    if (proxied_dsts.empty()) proxied_dsts.resize(capacity);
    return proxied_dsts[id];
  }
  // The server name an SNI listener's client asked for (at most kMaxServerName bytes). assign()
  // reuses the slot's string, so this allocates only the first few times.
  std::string& server_name(uint32_t id) {
    if (server_names.empty()) server_names.resize(capacity);
    return server_names[id];
  }

  // The TLS state of a session that terminates or originates TLS (null for any other).
  TlsLink* tls(uint32_t id) const { return id < tls_links.size() ? tls_links[id].get() : nullptr; }
  TlsLink& make_tls(uint32_t id);
  void drop_tls(uint32_t id);

  const uint32_t capacity;
  std::vector<sockaddr_in6> proxied_dsts;
  std::vector<std::string> server_names;
  std::vector<std::unique_ptr<TlsLink>> tls_links;

  Extras(const Extras&) = delete;
  Extras& operator=(const Extras&) = delete;
  ~Extras();
};

// The most of a ClientHello's server name kept for the access log and routing (a host name has
// at most 253 bytes anyway).
inline constexpr size_t kMaxServerName = 255;

}  // namespace ringlb::proxy
