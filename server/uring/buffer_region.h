// One memory region registered once as fixed buffers and shared with every worker ring.
//
// The registration lives on a template ring that is created SINGLE_ISSUER|R_DISABLED and never
// enabled: such a ring can be the source of CLONE_BUFFERS from any thread (an enabled
// SINGLE_ISSUER source owned by another thread gives -EEXIST).
#pragma once

#include <cstddef>
#include <cstdint>

#include "server/uring/ring.h"

namespace ringlb::uring {

class BufferRegion {
 public:
  BufferRegion() = default;
  ~BufferRegion();
  BufferRegion(const BufferRegion&) = delete;
  BufferRegion& operator=(const BufferRegion&) = delete;

  // `parts` registered buffers (one per worker) of `part_bytes` each. 0 or -errno.
  int init(unsigned parts, size_t part_bytes);

  // Shares the registration with `ring`, which must have no buffers yet. 0 or -errno.
  int clone_into(Ring& ring);

  unsigned parts() const { return parts_; }
  size_t part_bytes() const { return part_bytes_; }
  // Start of the part whose fixed-buffer index is `index`.
  uint8_t* part(unsigned index) const { return base_ + index * part_bytes_; }
  Ring& template_ring() { return template_; }

 private:
  Ring template_;
  uint8_t* base_ = nullptr;
  size_t total_ = 0;
  size_t part_bytes_ = 0;
  unsigned parts_ = 0;
};

}  // namespace ringlb::uring
