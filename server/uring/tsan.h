// ThreadSanitizer annotations for memory handed between threads through the kernel. A msg_ring
// carries only a 64-bit word to another ring, but the receiver then reads what the sender wrote
// before it (a reload's new listener route, a policy, a diagnostics request): the kernel orders
// the two, and TSan cannot see it. The sender releases on the target ring's sync word when it
// prepares the message, the receiver acquires it when the message's completion arrives. No-ops
// outside TSan builds (build:tsan defines RINGLB_TSAN).
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(RINGLB_TSAN)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace ringlb::uring {

#if defined(RINGLB_TSAN)
// One sync address per ring fd (fds are small and unique while the ring lives; two rings sharing
// a slot only add ordering TSan then assumes, never hide a race between them and a third).
inline void* tsan_ring_sync(int ring_fd) {
  static char words[4096];
  return &words[static_cast<unsigned>(ring_fd) % sizeof(words)];
}
inline void handoff_release(int target_ring_fd) { __tsan_release(tsan_ring_sync(target_ring_fd)); }
inline void handoff_acquire(int own_ring_fd) { __tsan_acquire(tsan_ring_sync(own_ring_fd)); }
// liburing maps a ring's memory with raw mmap/munmap system calls, which TSan does not see: a
// ring mapped where another thread's freed ring was would look like that thread's memory. The
// unmap happens before the kernel hands the address out again, so a ring released when it is
// torn down and acquired when it is set up tells TSan just that (keyed by page).
inline void* tsan_page_sync(const void* mapping) {
  static char words[4096];
  return &words[(reinterpret_cast<uintptr_t>(mapping) >> 12) % sizeof(words)];
}
inline void mapping_released(const void* mapping, size_t len) {
  for (size_t off = 0; off < len; off += 4096) __tsan_release(tsan_page_sync(static_cast<const char*>(mapping) + off));
}
inline void mapping_acquired(const void* mapping, size_t len) {
  for (size_t off = 0; off < len; off += 4096) __tsan_acquire(tsan_page_sync(static_cast<const char*>(mapping) + off));
}
#else
inline void handoff_release(int) {}
inline void handoff_acquire(int) {}
inline void mapping_released(const void*, size_t) {}
inline void mapping_acquired(const void*, size_t) {}
#endif

}  // namespace ringlb::uring
