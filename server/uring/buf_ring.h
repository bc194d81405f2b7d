// RAII owner of a provided-buffer ring whose buffers are slices of a registered region.
//
// A recv that selects its buffer at completion time holds no memory while a connection is idle;
// because the buffers sit inside a registered (fixed) buffer, the send can use WRITE_FIXED on them.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>

#include "server/uring/ring.h"

namespace ringlb::uring {

class BufRing {
 public:
  BufRing() = default;
  ~BufRing();
  BufRing(const BufRing&) = delete;
  BufRing& operator=(const BufRing&) = delete;

  // `count` (a power of two) buffers of `buf_bytes` each, carved from `base`, as group `group`.
  int init(Ring& ring, uint16_t group, uint8_t* base, unsigned count, unsigned buf_bytes);

  uint16_t group() const { return group_; }
  unsigned buf_bytes() const { return buf_bytes_; }
  unsigned count() const { return count_; }
  uint8_t* buffer(uint16_t id) const { return base_ + size_t{id} * buf_bytes_; }
  // Gives buffer `id` back to the kernel for a later recv.
  void recycle(uint16_t id);

 private:
  Ring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  size_t ring_bytes_ = 0;
  uint8_t* base_ = nullptr;
  unsigned count_ = 0;
  unsigned buf_bytes_ = 0;
  uint16_t group_ = 0;
};

}  // namespace ringlb::uring
