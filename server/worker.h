// A worker: one thread, one io_uring, many proxied connections.
//
// Client descriptors arrive from the acceptor by msg_ring; the worker connects a direct socket to
// a backend and moves bytes both ways. Each direction has at most one recv and one send in
// flight, and a recv is re-armed only once its bytes are sent, so a slow reader stalls its own
// connection (TCP flow control pushes back on the peer) and never grows memory. Received bytes
// land in provided buffers carved from this worker's part of the shared registered region; an
// idle connection holds no buffer at all.
#pragma once

#include <deque>
#include <future>
#include <string>
#include <vector>

#include <list>
#include <memory>
#include <unordered_map>

#include <netinet/in.h>

#include "balancer/picker.h"
#include "metrics/stats.h"
#include "server/proxy_protocol.h"
#include "server/shared_state.h"
#include "server/uring/buf_ring.h"
#include "server/uring/buffer_region.h"
#include "server/uring/file_table.h"
#include "server/uring/ring.h"
#include "server/user_data.h"

namespace ringlb {

class Worker {
 public:
  Worker(SharedState& shared, unsigned index, uring::BufferRegion& region);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Direct-descriptor slots a worker registers for `capacity` connections: client and backend
  // for each, and room for descriptors still closing.
  static unsigned table_slots(unsigned capacity) { return capacity * 2 + 64; }

  // Thread body. Creates the ring here (SINGLE_ISSUER binds it to this thread), reports the ring
  // fd (or -errno) through `ready`, then serves until drained.
  void run(std::promise<int>* ready);

 private:
  // kProxyHeader: an accept-proxy listener's client, whose PROXY header is being read.
  // kQueued: every backend that is up is at its max-connections; waiting for a turn.
  enum class State : uint8_t { kFree, kProxyHeader, kQueued, kConnecting, kProxying, kClosing };
  enum Dir : uint8_t { kUp = 0, kDown = 1 };  // up: client to backend; down: backend to client

  struct Flow {
    int32_t buf = -1;  // provided-buffer id holding bytes not yet sent
    uint32_t len = 0;
    uint32_t off = 0;
    bool eof = false;      // the source side sent FIN; SHUT_WR goes (or went) to the other side
    bool waiting = false;  // recv found no free buffer; queued in waiters_
    // Bytes are likely waiting at the source (the last recv saw IORING_CQE_F_SOCK_NONEMPTY):
    // recv at once. Otherwise the recv waits for readiness first instead of failing a try.
    bool expect_data = false;
  };

  // A balancer snapshot in use by this worker, with its picker. Connections keep the one they
  // picked from until they end, so a reload never pulls a backend out from under them.
  struct SnapshotRef {
    std::shared_ptr<const balancer::Snapshot> snapshot;
    std::unique_ptr<balancer::Picker> picker;
    uint32_t conns = 0;
    // The client's address is asked for first: Maglev hashes it, a PROXY header carries it,
    // the ACL checks it.
    bool needs_peer_name = false;
    std::shared_ptr<const Acl> acl;  // published with this snapshot
  };

  // A PROXY protocol header on its way to the backend.
  struct ProxyHeader {
    char bytes[kMaxProxyHeader];
    uint8_t len = 0;
    uint8_t off = 0;
  };

  struct Conn {
    State state = State::kFree;
    bool counted = false;    // counted in its backend's active connections
    int client = -1;         // direct slots, -1 when closed
    int backend = -1;
    int backend_index = -1;  // in snap->snapshot->backends
    uint32_t backend_id = 0; // registry id: stats and shared state
    uint16_t listener = 0;   // the --listen address the client came in on
    bool has_peer_name = false;  // peer_names_[id] holds this client's address
    bool has_proxied_dst = false;  // proxied_dsts_[id] holds where the client connected to
    SnapshotRef* snap = nullptr;
    uint64_t key_hash = 0;
    uint32_t attempts = 0;
    uint64_t tried = 0;  // backends already tried for this client (first 64)
    uint32_t inflight = 0;
    metrics::CloseReason first_eof = metrics::CloseReason::k_error;
    uint64_t last_active_ns = 0;
    uint64_t connect_start_ns = 0;
    uint64_t deadline_ns = 0;  // set when a reload removed its backend: closed at the drain deadline
    // For the access log.
    uint64_t start_ns = 0;
    uint32_t accept_us = 0;     // when the acceptor took it (its clock's low 32 bits)
    uint64_t queued_ns = 0;     // when it entered the queue (kQueued), or 0
    uint64_t queue_wait_ns = 0; // time spent queued, in all its turns
    uint64_t queue_ticket = 0;  // its entry in queue_ while kQueued
    uint64_t connected_ns = 0;  // 0: not connected to a backend
    uint64_t bytes[2] = {0, 0}; // received from the client (kUp) and from the backend (kDown)
    Flow flow[2];
  };

  // One direction of one connection: a recv waiting for a buffer, or a SHUT_WR to submit.
  struct FlowRef {
    uint32_t conn;
    Dir dir;
  };

  int setup();
  int fail(const char* step, int ret);  // logs the failed start-up step; returns ret
  // --iowq-scheduling batch: creates the io-wq thread for SHUTDOWNs as SCHED_BATCH. 0 or -errno.
  int create_batch_iowq_thread();
  void loop();
  void handle(const io_uring_cqe* cqe);
  uint64_t data(Tag tag, uint32_t index) const { return encode(tag, index, now_us_); }

  void on_handoff(int res, uint32_t listener, uint32_t stamp_us);
  // Lost hand-offs (msg_ring -EOVERFLOW: a descriptor installed here without its completion).
  // The acceptor says so with a kLostHandoff message; every slot no connection holds is probed,
  // and one that turns out open is adopted as a hand-off from `listener`. See worker.cc.
  void on_lost_handoff(uint32_t listener, uint32_t stamp_us);
  void on_audit_probe(uint32_t slot, int res);
  // accept-proxy: the client's PROXY header, read by arm_recv(kUp) (several recvs if it arrives
  // in pieces).
  void on_client_header(uint32_t id, int res, uint32_t flags);
  // Asks the socket for the client's address when Maglev, a PROXY header or the access log need
  // it, then routes.
  void identify_client(uint32_t id);
  void on_peer_name(uint32_t id, int res);
  // The client's address is known (or not needed): picks a backend and connects.
  void route(uint32_t id);
  void on_socket(uint32_t id, int res);
  void on_connect(uint32_t id, int res);
  void on_proxy_header(uint32_t id, int res);
  void on_recv(uint32_t id, Dir dir, int res, uint32_t flags);
  void on_send(uint32_t id, Dir dir, int res);
  void on_tick();
  void on_control(uint32_t what);
  void start_diagnostics();
  void on_diagnostics_install(uint32_t id, bool backend_side, int res);
  void finish_diagnostics();

  void start_connect(uint32_t id);
  // The maxconn queue: clients wait in arrival order; dispatch_queue lets them go as backends
  // get room (checked after every batch of completions, and every kQueuePollNs while any wait,
  // for room made by other workers).
  void enqueue(uint32_t id);
  void dispatch_queue();
  void arm_queue_poll();
  SnapshotRef* current_snapshot();
  void release_snapshot(SnapshotRef* ref);
  void count_backend(Conn& conn, bool on);
  void connect_failed(Conn& conn);
  // send-proxy backends: the PROXY header goes out before start_proxying.
  void send_proxy_header(uint32_t id, ProxyProtocol version);
  void submit_proxy_header(uint32_t id);
  void start_proxying(uint32_t id);
  void arm_recv(uint32_t id, Dir dir);
  // A recv found no free provided buffer (-ENOBUFS): queue the flow until one comes back.
  void wait_for_buffer(uint32_t id, Dir dir);
  void submit_send(uint32_t id, Dir dir);
  // The provided buffer a recv completion carries (-1: none), counted in use until released.
  int32_t take_buffer(uint32_t cqe_flags);
  void release_buffer(int32_t buf);
  void wake_waiters(size_t n);
  void maybe_close_after_eof(uint32_t id);
  void close_conn(uint32_t id, metrics::CloseReason reason);
  void log_access(uint32_t id, metrics::CloseReason reason);
  void flush_access_log();
  void maybe_finish(uint32_t id);
  void free_conn(uint32_t id);
  // close_direct without a completion on success; the slot is counted closed at once.
  void close_slot(int slot);
  // Marks `sqe` quiet (see Tag::kQuiet*), sampling one in kSampleEvery for latency.
  void quiet(io_uring_sqe* sqe, Tag tag);
  void arm_tick();

  SharedState& shared_;
  const Config& config_;
  const unsigned index_;
  uring::BufferRegion& region_;
  WorkerSlot& slot_;
  metrics::WorkerStats& stats_;

  uring::Ring ring_;
  uring::FileTable table_;
  uring::BufRing buffers_;
  std::list<SnapshotRef> snapshots_;  // back() is the newest; older ones live while used
  uint64_t snapshot_version_ = 0;
  std::vector<sockaddr_in6> peer_names_;  // by connection: the client's address
  // By connection, sized on first use: only send-proxy backends need it.
  std::vector<ProxyHeader> proxy_headers_;
  // By connection, sized on first use: the destination an accept-proxy client's header named.
  std::vector<sockaddr_in6> proxied_dsts_;
  // The start of PROXY headers that arrived in pieces (rare), by connection.
  std::unordered_map<uint32_t, std::string> partial_headers_;

  std::vector<Conn> conns_;
  std::vector<uint32_t> free_;
  std::vector<FlowRef> waiters_;
  size_t waiters_head_ = 0;
  std::vector<FlowRef> shutdowns_;  // SHUT_WR to submit at the end of this batch
  struct QueueEntry {
    uint32_t conn;    // the queue is in the order of its Conn::accept_us
    uint64_t ticket;  // matches Conn::queue_ticket while the entry is current
  };
  std::deque<QueueEntry> queue_;
  uint64_t next_ticket_ = 1;
  uint32_t queued_ = 0;
  bool queue_poll_armed_ = false;
  __kernel_timespec queue_poll_ts_{};
  std::string access_batch_;        // access log lines not yet handed to the writer
  uint64_t access_lines_ = 0;
  uint32_t live_ = 0;
  uint32_t sample_ = 0;

  uint64_t now_ns_ = 0;
  uint32_t now_us_ = 0;
  bool draining_ = false;
  uint64_t drain_deadline_ns_ = 0;
  __kernel_timespec tick_ts_{};
  uint32_t diagnostics_pending_ = 0;
  std::string diagnostics_;
  __kernel_timespec connect_ts_{};

  // Lost hand-off audits in progress, oldest first (their probes complete in this order).
  struct Audit {
    uint32_t listener = 0;
    uint32_t stamp_us = 0;
    uint32_t probes = 0;  // still to complete
  };
  std::deque<Audit> audits_;
  std::vector<int> closed_during_audit_;  // slots close_slot() closed while an audit ran
  int audit_value_ = 0;                   // the probes' SO_DOMAIN answers (unused)
};

}  // namespace ringlb
