// The sessions' I/O seam without a kernel: every request is recorded, nothing runs, and a test
// feeds back the completion it chooses (harness.h). Provided buffers, the waiters' queue, timers
// and the maxconn queue behave as the worker's do, in memory.
#pragma once

#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "server/proxy/ops.h"
#include "server/worker/admission_queue.h"

namespace ringlb::proxy::testing {

struct Request {
  enum Kind : uint8_t {
    kPeerName,
    kRecv,
    kRecvExact,
    kSendBuffer,
    kSend,
    kSocket,
    kConnect,
    kLowat,
    kShutdown,
    kCancel,
    kCancelSlot,
    kClose,
  };
  Kind kind;
  int slot = -1;
  uint64_t data = 0;
  RecvSpec spec;             // kRecv
  uint32_t len = 0;          // kRecvExact, kSendBuffer, kSend
  int32_t buf = -1;          // kSendBuffer
  uint32_t off = 0;          // kSendBuffer
  std::string bytes;         // kSend: what it sends; kSendBuffer: the buffer's bytes from off
  sockaddr_in6* peer = nullptr;  // kPeerName: where the kernel would write
  void* dst = nullptr;       // kRecvExact
  int value = 0;             // kLowat
  bool linked = false;       // kLowat: before the next request
  int family = 0;            // kSocket
  std::string to;            // kConnect: the address
  uint64_t target = 0;       // kCancel
};

class FakeOps final : public Ops {
 public:
  FakeOps(uint32_t buffers, uint32_t buffer_size)
      : memory_(static_cast<size_t>(buffers) * buffer_size), buffer_size_(buffer_size) {
    for (uint32_t b = 0; b < buffers; ++b) ring_.push_back(static_cast<int32_t>(b));
  }

  void peer_name(int slot, sockaddr_in6* out, uint32_t, uint64_t data) override {
    add({.kind = Request::kPeerName, .slot = slot, .data = data, .peer = out});
  }
  void recv(int slot, const RecvSpec& spec, uint64_t data) override {
    add({.kind = Request::kRecv, .slot = slot, .data = data, .spec = spec});
  }
  void recv_exact(int slot, void* dst, uint32_t len, uint64_t data) override {
    add({.kind = Request::kRecvExact, .slot = slot, .data = data, .len = len, .dst = dst});
  }
  void send_buffer(int slot, int32_t buf, uint32_t off, uint32_t len, uint64_t data) override {
    Request r{.kind = Request::kSendBuffer, .slot = slot, .data = data, .len = len, .buf = buf, .off = off};
    r.bytes.assign(reinterpret_cast<const char*>(buffer(buf)) + off, len);
    add(r);
  }
  void send(int slot, const void* bytes, uint32_t len, uint64_t data) override {
    Request r{.kind = Request::kSend, .slot = slot, .data = data, .len = len};
    r.bytes.assign(static_cast<const char*>(bytes), len);
    add(r);
  }
  void open_socket(int family, uint64_t data) override {
    add({.kind = Request::kSocket, .data = data, .family = family});
  }
  void connect(int slot, const Address& to, const __kernel_timespec*, uint64_t data) override {
    add({.kind = Request::kConnect, .slot = slot, .data = data, .to = to.to_string()});
  }
  void set_recv_lowat(int slot, const int* value, bool before_next) override {
    add({.kind = Request::kLowat, .slot = slot, .value = *value, .linked = before_next});
  }
  void shutdown_write(int slot, uint64_t data) override { add({.kind = Request::kShutdown, .slot = slot, .data = data}); }
  void cancel(uint64_t target, uint64_t data) override {
    add({.kind = Request::kCancel, .data = data, .target = target});
  }
  void cancel_slot(int slot, uint64_t data) override { add({.kind = Request::kCancelSlot, .slot = slot, .data = data}); }
  void close(int slot) override { add({.kind = Request::kClose, .slot = slot}); }

  uint8_t* buffer(int32_t buf) override { return memory_.data() + static_cast<size_t>(buf) * buffer_size_; }
  void took_buffer() override { ++in_use; }
  void recycle(int32_t buf) override {
    --in_use;
    ring_.push_back(buf);
  }
  bool wait_for_buffer(FlowRef ref) override {
    if (!ring_.empty() && waiters_.empty()) return false;
    waiters_.push_back(ref);
    return true;
  }
  bool next_waiter(FlowRef* ref) override {
    if (waiters_.empty()) return false;
    *ref = waiters_.front();
    waiters_.pop_front();
    return true;
  }
  uint32_t buffers_in_ring() const override { return static_cast<uint32_t>(ring_.size()); }

  void schedule(uint32_t id, uint64_t at_ns) override { timers[id] = at_ns; }
  void unschedule(uint32_t id) override { timers.erase(id); }
  bool scheduled(uint32_t id, uint64_t* at_ns) const override {
    auto it = timers.find(id);
    if (it == timers.end()) return false;
    *at_ns = it->second;
    return true;
  }

  uint64_t enqueue(uint32_t id, uint32_t accept_us) override { return queue_.push(id, accept_us); }
  void left_queue() override { queue_.left(); }
  size_t queued() const override { return queue_.size(); }
  void dispatch_queue(QueueVisitor& v) override {
    queue_.dispatch([&v](uint32_t id, uint64_t t) { return v.current(id, t); }, [&v](uint32_t id) { return v.can_go(id); },
                    [&v](uint32_t id) { v.go(id); });
  }
  void arm_queue_poll() override { ++queue_polls; }

  void log_access(const AccessRecord& r) override {
    std::string line;
    append_access_line(r, &line);
    access_lines.push_back(line);
  }

  // A buffer from the provided ring, as the kernel would take one for a recv: -1 when empty.
  int32_t take_from_ring() {
    if (ring_.empty()) return -1;
    const int32_t b = ring_.front();
    ring_.pop_front();
    return b;
  }
  size_t ring_size() const { return ring_.size(); }
  size_t waiters() const { return waiters_.size(); }

  std::vector<Request> requests;
  std::map<uint32_t, uint64_t> timers;
  std::vector<std::string> access_lines;
  int in_use = 0;  // buffers out of the ring
  int queue_polls = 0;

 private:
  void add(Request r) { requests.push_back(std::move(r)); }

  std::vector<uint8_t> memory_;
  const uint32_t buffer_size_;
  std::deque<int32_t> ring_;
  std::deque<FlowRef> waiters_;
  worker::AdmissionQueue queue_;
};

}  // namespace ringlb::proxy::testing
