#include "server/uring/buffer_region.h"

#include <sys/mman.h>
#include <sys/uio.h>

#include <cerrno>
#include <vector>

#include "server/uring/compat.h"

namespace ringlb::uring {

BufferRegion::~BufferRegion() {
  if (base_ != nullptr) munmap(base_, total_);
}

int BufferRegion::init(unsigned parts, size_t part_bytes) {
  if (base_ != nullptr) return -EBUSY;
  if (parts == 0 || part_bytes == 0) return -EINVAL;
  // The kernel limits one registered buffer to 1 GiB.
  if (part_bytes > (size_t{1} << 30)) return -EINVAL;
  RingOptions options;
  options.entries = 4;
  options.single_issuer = true;
  options.defer_taskrun = false;
  options.disabled = true;
  int ret = template_.init(options);
  if (ret < 0) return ret;
  const size_t page = 4096;
  part_bytes = (part_bytes + page - 1) / page * page;
  total_ = part_bytes * parts;
  void* mem = mmap(nullptr, total_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return -errno;
  base_ = static_cast<uint8_t*>(mem);
  part_bytes_ = part_bytes;
  parts_ = parts;
  std::vector<iovec> iovs(parts);
  for (unsigned i = 0; i < parts; ++i) iovs[i] = iovec{part(i), part_bytes};
  ret = io_uring_register_buffers(template_.get(), iovs.data(), parts);
  return ret < 0 ? ret : 0;
}

int BufferRegion::clone_into(Ring& ring) { return clone_buffers(ring.get(), template_.get()); }

}  // namespace ringlb::uring
