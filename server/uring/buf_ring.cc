#include "server/uring/buf_ring.h"

#include <sys/mman.h>

#include <cerrno>

namespace ringlb::uring {

BufRing::~BufRing() {
  if (ring_ != nullptr) io_uring_unregister_buf_ring(ring_->get(), group_);
  if (br_ != nullptr) munmap(br_, ring_bytes_);
}

int BufRing::init(Ring& ring, uint16_t group, uint8_t* base, unsigned count, unsigned buf_bytes) {
  if (br_ != nullptr) return -EBUSY;
  if (count == 0 || (count & (count - 1)) != 0 || count > 32768) return -EINVAL;
  // liburing 2.3 has no io_uring_setup_buf_ring: map the ring memory here and register it.
  ring_bytes_ = count * sizeof(io_uring_buf);
  void* mem = mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return -errno;
  br_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(br_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(br_);
  reg.ring_entries = count;
  reg.bgid = group;
  int ret = io_uring_register_buf_ring(ring.get(), &reg, 0);
  if (ret < 0) return ret;
  ring_ = &ring;
  group_ = group;
  base_ = base;
  count_ = count;
  buf_bytes_ = buf_bytes;
  const int mask = io_uring_buf_ring_mask(count);
  for (unsigned i = 0; i < count; ++i) {
    io_uring_buf_ring_add(br_, buffer(static_cast<uint16_t>(i)), buf_bytes,
                          static_cast<uint16_t>(i), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(br_, static_cast<int>(count));
  return 0;
}

void BufRing::recycle(uint16_t id) {
  io_uring_buf_ring_add(br_, buffer(id), buf_bytes_, id, io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(br_, 1);
}

}  // namespace ringlb::uring
