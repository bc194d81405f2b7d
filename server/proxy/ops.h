// The I/O seam of the connection path: everything a session asks of its worker. The worker
// implements it on its ring (worker/ring_ops.h); tests implement it with a fake that records each
// request and feeds back chosen completions (tests/proxy/fake_ops.h). Each I/O request names the
// user_data its completion carries; the driver (driver.h) makes those, and counts them in flight.
#pragma once

#include <linux/time_types.h>
#include <netinet/in.h>

#include <cstdint>

#include "server/access_log/access_log.h"
#include "server/base/address.h"

namespace ringlb::proxy {

// What a recv asks for.
struct RecvSpec {
  int32_t into = -1;         // a buffer granted to this flow; -1: one from the provided ring
  uint32_t len = 0;          // bytes at most
  bool peek = false;         // MSG_PEEK: the bytes stay in the socket
  bool poll_first = false;   // wait for readiness before trying (IORING_RECVSEND_POLL_FIRST)
  bool multishot = false;    // keeps receiving (completions flagged MORE) until it ends
  uint32_t budget = 0;       // multishot: ends by itself after this many bytes
};

// One direction of one session, as the buffer queue knows it. `gen` tells a session in a slot
// from a later one.
struct FlowRef {
  uint32_t id = 0;
  uint8_t dir = 0;
  uint8_t gen = 0;
};

// The maxconn queue as the driver walks it (the worker keeps it: worker/admission_queue.h).
class QueueVisitor {
 public:
  virtual bool current(uint32_t id, uint64_t ticket) = 0;  // a live entry, not a stale one
  virtual bool can_go(uint32_t id) = 0;  // room for it now; false stops everyone behind it
  virtual void go(uint32_t id) = 0;      // its turn: called after the entry is removed

 protected:
  ~QueueVisitor() = default;
};

class Ops {
 public:
  virtual ~Ops() = default;

  // I/O on direct descriptors (slots). Each posts one completion with `data`, but for a
  // multishot recv, whose completions but the last carry IORING_CQE_F_MORE.
  virtual void peer_name(int slot, sockaddr_in6* out, uint32_t len, uint64_t data) = 0;
  virtual void recv(int slot, const RecvSpec& spec, uint64_t data) = 0;
  // Exactly `len` bytes into plain memory (MSG_WAITALL): a PROXY header taken off the socket.
  virtual void recv_exact(int slot, void* dst, uint32_t len, uint64_t data) = 0;
  // Bytes of provided buffer `buf` from `off` (WRITE_FIXED: the region is registered).
  virtual void send_buffer(int slot, int32_t buf, uint32_t off, uint32_t len, uint64_t data) = 0;
  virtual void send(int slot, const void* bytes, uint32_t len, uint64_t data) = 0;
  // A new direct socket; the completion's res is its slot, or -errno.
  virtual void open_socket(int family, uint64_t data) = 0;
  // Connects `slot` to `to` (TCP_NODELAY first unless a Unix socket), failing with -ECANCELED
  // after `timeout` (which must stay valid until the request is submitted).
  virtual void connect(int slot, const Address& to, const __kernel_timespec* timeout, uint64_t data) = 0;
  // SO_RCVLOWAT, without a completion. `before_next`: linked to the next request, which waits
  // for it (and fails with -ECANCELED if it failed). `value` stays valid until submitted.
  virtual void set_recv_lowat(int slot, const int* value, bool before_next) = 0;
  virtual void shutdown_write(int slot, uint64_t data) = 0;
  virtual void cancel(uint64_t target, uint64_t data) = 0;  // the request sent with `target`
  virtual void cancel_slot(int slot, uint64_t data) = 0;    // every request on `slot`
  virtual void close(int slot) = 0;                         // no completion

  // Provided buffers (the worker's ring of them, and the queue of flows waiting for one).
  virtual uint8_t* buffer(int32_t buf) = 0;
  virtual void took_buffer() = 0;  // a completion carried a buffer out of the ring
  virtual void recycle(int32_t buf) = 0;  // back into the ring
  // A recv found the ring empty: true, `ref` waits its turn; false, the ring has buffers again
  // (one came back while the recv was on its way) and nobody waits: retry at once.
  virtual bool wait_for_buffer(FlowRef ref) = 0;
  // The oldest waiter, taken off the queue; false when none waits.
  virtual bool next_waiter(FlowRef* ref) = 0;
  virtual uint32_t buffers_in_ring() const = 0;

  // One timer per session id, at its earliest deadline.
  virtual void schedule(uint32_t id, uint64_t at_ns) = 0;
  virtual void unschedule(uint32_t id) = 0;
  virtual bool scheduled(uint32_t id, uint64_t* at_ns) const = 0;

  // The maxconn queue.
  virtual uint64_t enqueue(uint32_t id, uint32_t accept_us) = 0;  // its ticket
  virtual void left_queue() = 0;  // a queued session left another way (closed, timed out)
  virtual size_t queued() const = 0;
  virtual void dispatch_queue(QueueVisitor& visitor) = 0;
  // A short timer while sessions are queued, for room made by other workers: the driver's
  // on_queue_poll() follows.
  virtual void arm_queue_poll() = 0;

  // A finished access-log record (only called when the access log is on).
  virtual void log_access(const AccessRecord& record) = 0;
};

}  // namespace ringlb::proxy
