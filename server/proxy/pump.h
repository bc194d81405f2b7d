// The two-way pump of a proxied connection (liburing proxy.c's conn_dir): per direction, a recv
// into a provided buffer, then a WRITE_FIXED of those bytes to the other side, then the next
// recv. A FIN becomes shutdown(SHUT_WR) on the other side while the other direction keeps
// flowing. Also the worker's buffer accounting: every provided buffer is taken and released
// here, and a buffer freed while flows wait goes to the oldest of them.
#pragma once

#include <cstdint>
#include <vector>

#include "server/proxy/conn.h"
#include "server/uring/user_data.h"
#include "server/worker/buffer_pool.h"

namespace ringlb::worker {
struct Context;
}

namespace ringlb::proxy {

class Pump {
 public:
  explicit Pump(worker::Context& ctx);
  Pump(const Pump&) = delete;
  Pump& operator=(const Pump&) = delete;

  // The backend is connected (and any send-proxy header written): bytes flow both ways.
  void start(uint32_t id);
  void on_recv(uint32_t id, Dir dir, int res, uint32_t cqe_flags);
  void on_send(uint32_t id, Dir dir, int res);
  void on_shutdown(uint32_t id);

  // SHUT_WRs queued during this batch of completions; the loop submits them last (see .cc).
  void submit_shutdowns();

  // The provided buffer a recv completion carries (-1: none), counted in use until released.
  int32_t take_buffer(uint32_t cqe_flags);
  // The buffer a recv of `flow` completed into: its granted one, or what the completion carries.
  int32_t take_recv_buffer(Flow& flow, uint32_t cqe_flags);
  // A client's MSG_PEEK recv completed (a PROXY header's or a ClientHello's): does what every
  // peek does first and returns the buffer holding `res` peeked bytes for the caller to read and
  // release; or -1 when the connection is already dealt with: closing, waiting for a buffer, or
  // closed here (at EOF as `at_eof`, else by the error).
  int32_t take_peek(uint32_t id, int res, uint32_t cqe_flags, metrics::CloseReason at_eof);
  // Gives a buffer back (no-op for -1): to the oldest flow waiting for one, or to the kernel.
  bool release_buffer(int32_t buf);  // true: it went to a waiter
  // A recv found the provided ring empty (-ENOBUFS): waits for a buffer, or retries at once when
  // one came back meanwhile. Works for a PROXY header's reads too.
  void wait_for_buffer(uint32_t id, Dir dir);
  // After lost completions, or as a safety net: waiters are granted buffers the ring still has.
  void unstick_waiters();

  // Gives back every buffer `flow` still holds (bytes never sent: its connection is gone).
  void release_flow(Flow& flow);

  // A recv for flow `dir`: into its granted buffer when it has one, else a provided buffer.
  // `extra_flags` (e.g. MSG_PEEK) and `len` (0: a whole buffer) serve the PROXY header reader.
  void arm_recv(uint32_t id, Dir dir, Tag tag, int extra_flags = 0, uint32_t len = 0);

 private:
  // The flow's data recv: multishot (--recv multishot) unless it goes into a granted buffer.
  void arm_flow_recv(uint32_t id, Dir dir);
  // Arms the flow's recv unless one is armed, it is done or waiting, or its chain is full.
  void maybe_arm(uint32_t id, Dir dir);
  // Stops the flow's multishot recv: its chain holds --flow-buffers buffers.
  void cancel_recv(uint32_t id, Dir dir);
  // The source sent FIN and every byte before it was sent on: SHUT_WR to the other side.
  void forward_eof(uint32_t id, Dir dir);
  void enqueue(Flow& flow, int32_t buf, uint32_t len);
  int32_t dequeue(Flow& flow);  // the head buffer, taken off the chain
  void submit_send(uint32_t id, Dir dir);
  // A granted buffer's waiter gets its turn: its recv goes into that buffer.
  void resume(worker::FlowRef ref, int32_t buf);
  // The recv a waiting flow missed: its PROXY header's peek, or its next data recv.
  void recv_again(uint32_t id, Dir dir);
  // A queued waiter still wants a buffer: its connection is the same and still reading.
  bool still_waiting(worker::FlowRef ref) const;

  worker::Context& ctx_;
  // Per provided buffer, while it sits in a flow's chain: the next buffer and its length.
  std::vector<int32_t> next_;
  std::vector<uint32_t> lens_;
  std::vector<worker::FlowRef> shutdowns_;
};

}  // namespace ringlb::proxy
