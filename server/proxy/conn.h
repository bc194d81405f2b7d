// The state of one proxied connection and its two flows: plain data, shared by the pieces of a
// worker (intake, upstream, pump, lifecycle) that each drive one phase of it.
#pragma once

#include <cstdint>

#include "metrics/stats.h"
#include "server/limits/source_table.h"

namespace ringlb::proxy {

struct SnapshotRef;  // server/proxy/snapshot_cache.h
}  // namespace ringlb::proxy

namespace ringlb::sources {
class SharedSourceTable;  // server/limits/shared_source_table.h
}

namespace ringlb::proxy {

// kProxyHeader: an accept-proxy listener's client, whose PROXY header is being read (or, with
// trusted-proxies, whose source address is being checked first).
// kClientHello: an SNI listener's client, whose TLS ClientHello is being peeked at.
// kQueued: every backend that is up is at its max-connections; waiting for a turn.
// kConnecting covers everything between the hand-off and the first proxied byte: asking the
// socket for the client's address, connecting (and retrying), writing a send-proxy header.
enum class State : uint8_t { kFree, kProxyHeader, kClientHello, kQueued, kConnecting, kProxying, kClosing };
enum Dir : uint8_t { kUp = 0, kDown = 1 };  // up: client to backend; down: backend to client

// One direction. Bytes received and not yet sent wait in a chain of buffers (the Pump keeps each
// buffer's length and successor), oldest first; one send is in flight at a time, from the head.
// The recv stops while the flow holds --flow-buffers buffers (a multishot recv is cancelled), so
// a slow reader stalls only its own connection and memory per direction stays bounded.
struct Flow {
  int32_t buf = -1;      // the head of the chain: its bytes from `off` are being sent
  int32_t tail = -1;
  uint32_t len = 0;      // the head's length
  uint32_t off = 0;
  uint16_t queued = 0;   // buffers in the chain
  int32_t granted = -1;  // a buffer the pool handed to this flow for its next recv (FIFO waiters)
  bool eof = false;      // the source side sent FIN; SHUT_WR goes (or went) to the other side
  bool eof_pending = false;  // FIN seen, but bytes received before it are still being sent
  bool waiting = false;  // queued in the buffer pool for a free buffer
  bool recv_armed = false;   // a recv of this flow (multishot or not) is in flight
  bool multishot = false;    // the armed recv is multishot
  bool cancelling = false;   // the armed multishot recv is being cancelled (the chain is full)
  bool sending = false;
  // Bytes are likely waiting at the source (the last recv saw IORING_CQE_F_SOCK_NONEMPTY): recv
  // at once. Otherwise the recv waits for readiness first instead of failing a try.
  bool expect_data = false;
  uint64_t recv_data = 0;    // the armed multishot recv's user_data, to cancel it by
};

struct Conn {
  State state = State::kFree;
  // Bumped when the slot is freed: completions carry it, so one meant for an earlier client of
  // this slot (possible only after the kernel dropped completions) is recognised and ignored.
  uint8_t gen = 0;
  bool counted = false;          // counted in its backend's active connections
  bool has_peer_name = false;    // Context::peer_names[id] holds this client's address
  bool has_proxied_dst = false;  // Context::proxied_dsts[id] holds where the client connected to
  bool has_server_name = false;  // Context::server_names[id] holds its ClientHello's SNI
  bool listener_counted = false; // counted in SharedState::listener_active of its listener
  int client = -1;               // direct slots, -1 when closed
  int backend = -1;
  int backend_index = -1;        // in snap->snapshot->backends
  uint32_t backend_id = 0;       // registry id: stats and shared state
  uint16_t listener = 0;         // the --listen address the client came in on
  uint16_t cluster = 0;          // where it goes (registry cluster index); set with snap
  SnapshotRef* snap = nullptr;   // null until its cluster is known (an SNI listener's client)
  // The per-source table that admitted it (and its key there), released when it is freed.
  sources::SharedSourceTable* source_table = nullptr;
  sources::SourceKey source;
  uint64_t key_hash = 0;
  uint32_t attempts = 0;
  uint8_t socket_retries = 0;    // socket_direct_alloc tries that found the table full
  uint64_t tried = 0;            // backends already tried for this client (first 64)
  uint32_t inflight = 0;         // completions still to come that name this connection
  metrics::CloseReason first_eof = metrics::CloseReason::k_error;
  // Why it closed: counted when its slot is freed, after the live count drops, so that a scrape
  // (which reads closed, then live, then accepted) never counts a connection twice.
  metrics::CloseReason closed_as = metrics::CloseReason::k_error;
  uint64_t last_active_ns = 0;
  uint64_t connect_start_ns = 0;
  uint64_t deadline_ns = 0;      // set when a reload removed its backend: closed at the drain deadline
  uint64_t start_ns = 0;
  uint32_t accept_us = 0;        // when the acceptor took it (its clock's low 32 bits)
  uint64_t queued_ns = 0;        // when it entered the queue (kQueued)
  uint64_t queue_wait_ns = 0;    // time spent queued, in all its turns
  uint64_t queue_ticket = 0;     // its entry in the admission queue while kQueued
  uint64_t connected_ns = 0;     // 0: not connected to a backend
  uint64_t closing_ns = 0;       // when it entered kClosing
  uint64_t bytes[2] = {0, 0};    // received from the client (kUp) and from the backend (kDown)
  Flow flow[2];
};

}  // namespace ringlb::proxy
