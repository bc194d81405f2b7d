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

#include "server/proxy/ops.h"

namespace ringlb::worker {

using proxy::FlowRef;

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
  // A buffer in use went back into the provided ring (nobody waited for it).
  void returned_to_ring() {
    --in_use_;
    ++in_ring_;
  }

  // A flow's recv found the provided ring empty (-ENOBUFS). True: it is queued and will be
  // granted a buffer freed after those queued before it. False: the ring has buffers again (one
  // was recycled while that recv was on its way) and nobody waits: retry the recv at once.
  bool wait(FlowRef ref) {
    if (in_ring_ > 0 && waiters_.empty()) return false;
    waiters_.push_back(ref);
    return true;
  }

  // Takes the oldest waiter off the queue (it may no longer want a buffer: its session may have
  // closed since; the caller checks and asks for the next). False when none waits.
  bool next_waiter(FlowRef* out) {
    if (waiters_.empty()) return false;
    *out = waiters_.front();
    waiters_.pop_front();
    return true;
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
