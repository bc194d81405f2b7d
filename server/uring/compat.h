// Helpers that newer liburing releases provide and Debian's liburing 2.3 lacks.
//
// Where the installed liburing has a helper, the wrapper calls it; otherwise it fills the SQE from
// the kernel ABI (documented in ../shared/notes/io_uring.md and include/uapi/linux/io_uring.h), so
// the same ringlb code builds against liburing 2.3 and 2.9+.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <cstring>
#include <sys/socket.h>

#include "server/uring/tsan.h"

// liburing 2.4 introduced io_uring_version.h; 2.3 has no version macros at all.
#if __has_include(<liburing/io_uring_version.h>)
#include <liburing/io_uring_version.h>
#define RINGLB_LIBURING_AT_LEAST(major, minor)                                            \
  (IO_URING_VERSION_MAJOR > (major) ||                                                    \
   (IO_URING_VERSION_MAJOR == (major) && IO_URING_VERSION_MINOR >= (minor)))
#else
#define RINGLB_LIBURING_AT_LEAST(major, minor) 0
#endif

namespace ringlb::uring {

// Opcodes and command values newer than liburing 2.3's enum. Named here, not in the IORING_
// namespace, because newer headers define them as enumerators (not macros) and would clash.
inline constexpr uint8_t kOpMsgRing = 40;
inline constexpr uint8_t kOpUringCmd = 46;
inline constexpr uint8_t kOpFixedFdInstall = 54;
inline constexpr uint8_t kOpBind = 56;
inline constexpr uint8_t kOpListen = 57;
inline constexpr uint64_t kMsgSendFd = 1;  // IORING_MSG_SEND_FD
inline constexpr uint32_t kFixedFdNoCloexec = 1;
inline constexpr uint32_t kSocketOpGetsockopt = 2;
inline constexpr uint32_t kSocketOpSetsockopt = 3;
inline constexpr unsigned kRegisterCloneBuffers = 30;
inline constexpr uint32_t kCloneSrcRegistered = 1;
inline constexpr uint32_t kCloneDstReplace = 2;
inline constexpr unsigned kRegisterEnableRings = 12;

// Passes the direct descriptor in `source_slot` of the submitting ring into slot `target_slot` of
// the ring `target_ring_fd`; the target sees a CQE with user_data `data`.
inline void prep_msg_ring_fd(io_uring_sqe* sqe, int target_ring_fd, int source_slot,
                             int target_slot, uint64_t data, unsigned flags) {
#if RINGLB_LIBURING_AT_LEAST(2, 4)
  io_uring_prep_msg_ring_fd(sqe, target_ring_fd, source_slot, target_slot, data, flags);
#else
  io_uring_prep_rw(kOpMsgRing, sqe, target_ring_fd, reinterpret_cast<void*>(kMsgSendFd), 0, data);
  sqe->addr3 = static_cast<uint64_t>(source_slot);
  // The kernel reads file_index as slot + 1 so that 0 can mean "not a fixed slot".
  sqe->file_index = static_cast<uint32_t>(target_slot) + 1;
  sqe->msg_ring_flags = flags;
#endif
}

// As prep_msg_ring_fd, but the target ring picks a free slot; the target CQE's res is that slot.
inline void prep_msg_ring_fd_alloc(io_uring_sqe* sqe, int target_ring_fd, int source_slot,
                                   uint64_t data, unsigned flags) {
  handoff_release(target_ring_fd);  // what was written before the hand-off is the receiver's
#if RINGLB_LIBURING_AT_LEAST(2, 4)
  io_uring_prep_msg_ring_fd_alloc(sqe, target_ring_fd, source_slot, data, flags);
#else
  io_uring_prep_rw(kOpMsgRing, sqe, target_ring_fd, reinterpret_cast<void*>(kMsgSendFd), 0, data);
  sqe->addr3 = static_cast<uint64_t>(source_slot);
  sqe->file_index = IORING_FILE_INDEX_ALLOC;
  sqe->msg_ring_flags = flags;
#endif
}

// Single-shot accept into a slot the kernel picks (CQE res = slot). liburing 2.3's
// io_uring_prep_accept_direct adds 1 to IORING_FILE_INDEX_ALLOC, wrapping it to 0 (= a regular
// fd), so the index is written here directly.
inline void prep_accept_direct_alloc(io_uring_sqe* sqe, int listen_slot, int flags) {
  io_uring_prep_accept(sqe, listen_slot, nullptr, nullptr, flags);
  sqe->file_index = IORING_FILE_INDEX_ALLOC;
  sqe->flags |= IOSQE_FIXED_FILE;
}

// Posts a CQE carrying `data` (and `res` = len) to another ring: a cheap cross-thread wake-up.
inline void prep_msg_ring_data(io_uring_sqe* sqe, int target_ring_fd, unsigned len, uint64_t data) {
  handoff_release(target_ring_fd);  // what was written before the message is the receiver's
  io_uring_prep_msg_ring(sqe, target_ring_fd, len, data, 0);
}

// Installs the direct descriptor `slot` as a regular fd (O_CLOEXEC unless kFixedFdNoCloexec);
// CQE res is the new fd. Slow paths only.
inline void prep_fixed_fd_install(io_uring_sqe* sqe, int slot, unsigned flags) {
#if RINGLB_LIBURING_AT_LEAST(2, 6)
  io_uring_prep_fixed_fd_install(sqe, slot, flags);
#else
  io_uring_prep_rw(kOpFixedFdInstall, sqe, slot, nullptr, 0, 0);
  // The kernel refuses this op unless the fd is marked as a fixed slot.
  sqe->flags = IOSQE_FIXED_FILE;
  sqe->rw_flags = static_cast<int>(flags);
#endif
}

// BIND on a direct socket slot.
inline void prep_bind_direct(io_uring_sqe* sqe, int slot, const sockaddr* addr, socklen_t len) {
#if RINGLB_LIBURING_AT_LEAST(2, 7)
  io_uring_prep_bind(sqe, slot, const_cast<sockaddr*>(addr), len);
#else
  io_uring_prep_rw(kOpBind, sqe, slot, addr, 0, len);
#endif
  sqe->flags |= IOSQE_FIXED_FILE;
}

// LISTEN on a direct socket slot.
inline void prep_listen_direct(io_uring_sqe* sqe, int slot, int backlog) {
#if RINGLB_LIBURING_AT_LEAST(2, 7)
  io_uring_prep_listen(sqe, slot, backlog);
#else
  io_uring_prep_rw(kOpListen, sqe, slot, nullptr, static_cast<unsigned>(backlog), 0);
#endif
  sqe->flags |= IOSQE_FIXED_FILE;
}

// Socket uring_cmd (SETSOCKOPT / GETSOCKOPT) on a direct socket slot. `optval` must stay valid
// until the CQE arrives.
inline void prep_cmd_sock_direct(io_uring_sqe* sqe, uint32_t cmd_op, int slot, int level,
                                 int optname, void* optval, int optlen) {
#if RINGLB_LIBURING_AT_LEAST(2, 6)
  io_uring_prep_cmd_sock(sqe, cmd_op, slot, level, optname, optval, optlen);
#else
  io_uring_prep_rw(kOpUringCmd, sqe, slot, nullptr, 0, 0);
  sqe->cmd_op = cmd_op;
  // level and optname share the 64-bit addr field: level in the low word, optname in the high.
  sqe->addr = static_cast<uint32_t>(level) |
              (static_cast<uint64_t>(static_cast<uint32_t>(optname)) << 32);
  sqe->file_index = static_cast<uint32_t>(optlen);  // optlen lives at offset 44
  sqe->addr3 = reinterpret_cast<uint64_t>(optval);
#endif
  sqe->flags |= IOSQE_FIXED_FILE;
}

// Shares the registered buffers of `src` with `dst` (whole table, or a range).
// Returns 0 or -errno, as io_uring_register does.
struct CloneBuffersArg {
  uint32_t src_fd;
  uint32_t flags;
  uint32_t src_off;
  uint32_t dst_off;
  uint32_t nr;
  uint32_t pad[3];
};
static_assert(sizeof(CloneBuffersArg) == 32);

inline int clone_buffers_offset(io_uring* dst, io_uring* src, unsigned dst_off, unsigned src_off,
                                unsigned nr, unsigned flags) {
#if RINGLB_LIBURING_AT_LEAST(2, 9)
  return io_uring_clone_buffers_offset(dst, src, dst_off, src_off, nr, flags);
#else
  // The plain ring fd is passed, never a registered-ring index, so SRC_REGISTERED stays clear.
  CloneBuffersArg arg{};
  arg.src_fd = static_cast<uint32_t>(src->ring_fd);
  arg.flags = flags & ~kCloneSrcRegistered;
  arg.src_off = src_off;
  arg.dst_off = dst_off;
  arg.nr = nr;
  return io_uring_register(static_cast<unsigned>(dst->ring_fd), kRegisterCloneBuffers, &arg, 1);
#endif
}

inline int clone_buffers(io_uring* dst, io_uring* src) {
#if RINGLB_LIBURING_AT_LEAST(2, 8)
  return io_uring_clone_buffers(dst, src);
#else
  return clone_buffers_offset(dst, src, 0, 0, 0, 0);
#endif
}

// liburing 2.3 declares io_uring_enable_rings but its shared library does not export it.
inline int enable_rings(io_uring* ring) {
  return io_uring_register(static_cast<unsigned>(ring->ring_fd), kRegisterEnableRings, nullptr, 0);
}

}  // namespace ringlb::uring
