// Accounting for one worker's provided buffers, and the first-come-first-served queue of flows
// waiting for one. Pure: the worker does the io_uring part (recycling a buffer into the
// provided-buffer ring, or a recv into a buffer granted to a waiter).
//
// Why grants: a buffer recycled into the provided ring goes to whichever armed recv has data
// first, so a flow that waited could wait forever behind busier ones. While anyone waits, a freed
// buffer skips the ring and goes to the oldest waiter, whose recv then names that buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

namespace ringlb::worker {

// One direction of one connection. `gen` tells the connection in a slot from a later one.
struct FlowRef {
  uint32_t conn = 0;
  uint8_t dir = 0;
  uint8_t gen = 0;
};

class BufferPool {
 public:
  explicit BufferPool(uint32_t count) : count_(count), in_ring_(count) {}
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A recv completed holding a buffer the kernel took from the provided ring.
  void took_from_ring() {
    --in_ring_;
    ++in_use_;
  }

  // What becomes of a buffer whose bytes are all sent (or dropped).
  struct Release {
    bool to_waiter = false;  // false: recycle it into the provided ring
    FlowRef waiter;          // when to_waiter: its next recv goes into this buffer
  };
  // `wants(ref)` says whether a queued flow still waits (its connection may have closed since).
  template <typename Wants>
  Release release(Wants&& wants) {
    while (!waiters_.empty()) {
      const FlowRef ref = waiters_.front();
      waiters_.pop_front();
      if (wants(ref)) return {true, ref};  // stays in use: it is the waiter's now
    }
    --in_use_;
    ++in_ring_;
    return {};
  }

  // A flow's recv found the provided ring empty (-ENOBUFS). True: it is queued and will be
  // granted the next buffer freed after those queued before it. False: the ring has buffers
  // again (one was recycled while that recv was on its way): retry the recv at once.
  bool wait(FlowRef ref) {
    if (in_ring_ > 0 && waiters_.empty()) return false;
    waiters_.push_back(ref);
    return true;
  }

  // Takes the oldest flow that still wants a buffer off the queue, for a retry through the
  // provided ring (when the ring holds buffers while flows wait: completions were lost).
  template <typename Wants>
  bool pop(Wants&& wants, FlowRef* out) {
    while (!waiters_.empty()) {
      const FlowRef ref = waiters_.front();
      waiters_.pop_front();
      if (wants(ref)) {
        *out = ref;
        return true;
      }
    }
    return false;
  }

  // Waiters queued (some may no longer want a buffer; they are skipped when their turn comes).
  size_t queued() const { return waiters_.size(); }
  uint32_t in_use() const { return in_use_; }
  uint32_t in_ring() const { return in_ring_; }
  uint32_t count() const { return count_; }

 private:
  uint32_t count_;
  uint32_t in_ring_;
  uint32_t in_use_ = 0;
  std::deque<FlowRef> waiters_;
};

}  // namespace ringlb::worker
