#include "server/worker/ring_ops.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "server/uring/compat.h"

namespace ringlb::worker {
namespace {

// One quiet op in this many still posts its completion, so its latency is measured.
constexpr uint32_t kSampleEvery = 64;

}  // namespace

void RingOps::quiet(io_uring_sqe* sqe, Tag tag) {
  const bool sample = env_.config.metrics_enabled && ++sample_ % kSampleEvery == 0;
  if (!sample) sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  sqe->user_data = data_plain(tag);
}

void RingOps::peer_name(int slot, sockaddr_in6* out, uint32_t len, uint64_t data) {
  io_uring_sqe* sqe = ring_.sqe();
  uring::prep_cmd_sock_direct(sqe, uring::kSocketOpGetsockopt, slot, SOL_SOCKET, SO_PEERNAME, out, len);
  sqe->user_data = data;
}

void RingOps::recv(int slot, const proxy::RecvSpec& spec, uint64_t data) {
  io_uring_sqe* sqe = ring_.sqe();
  const int flags = spec.peek ? MSG_PEEK : 0;
  if (spec.multishot) {
    io_uring_prep_recv_multishot(sqe, slot, nullptr, 0, flags);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = buffers_.group();
    // kernel 6.17's multishot byte limit, in the optlen field.
    sqe->file_index = spec.budget;
  } else if (spec.into >= 0) {
    // The pool handed this flow a buffer (it waited longest): the recv names it.
    io_uring_prep_recv(sqe, slot, buffers_.buffer(static_cast<uint16_t>(spec.into)), spec.len, flags);
    sqe->flags |= IOSQE_FIXED_FILE;
  } else {
    io_uring_prep_recv(sqe, slot, nullptr, spec.len, flags);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = buffers_.group();
  }
  if (spec.poll_first) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
  sqe->user_data = data;
}

void RingOps::recv_exact(int slot, void* dst, uint32_t len, uint64_t data) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_recv(sqe, slot, dst, len, MSG_WAITALL);
  sqe->flags |= IOSQE_FIXED_FILE;
  sqe->user_data = data;
}

void RingOps::send_buffer(int slot, int32_t buf, uint32_t off, uint32_t len, uint64_t data) {
  io_uring_sqe* sqe = ring_.sqe();
  // WRITE_FIXED: the bytes sit in the registered region, so the kernel skips pinning them.
  io_uring_prep_write_fixed(sqe, slot, buffers_.buffer(static_cast<uint16_t>(buf)) + off, len, 0,
                            static_cast<int>(env_.worker));
  sqe->flags |= IOSQE_FIXED_FILE;
  sqe->user_data = data;
}

void RingOps::send(int slot, const void* bytes, uint32_t len, uint64_t data) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_send(sqe, slot, bytes, len, MSG_NOSIGNAL);
  sqe->flags |= IOSQE_FIXED_FILE;
  sqe->user_data = data;
}

void RingOps::open_socket(int family, uint64_t data) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_socket_direct_alloc(sqe, family, SOCK_STREAM, 0, 0);
  sqe->user_data = data;
}

void RingOps::connect(int slot, const Address& to, const __kernel_timespec* timeout, uint64_t data) {
  const bool tcp = to.family() != AF_UNIX;
  // The whole chain in one submission: split, the connect would run without its timeout.
  ring_.reserve(tcp ? 3 : 2);
  io_uring_sqe* sqe;
  if (tcp) {
    static const int kOne = 1;
    // Proxied bytes must not wait for Nagle; the client side inherits it from the listener. (A
    // Unix socket has no Nagle, and would fail the option, and with it the linked connect.) A
    // failure cancels the linked connect, which reports it.
    sqe = ring_.sqe();
    uring::prep_cmd_sock_direct(sqe, uring::kSocketOpSetsockopt, slot, IPPROTO_TCP, TCP_NODELAY,
                                const_cast<int*>(&kOne), sizeof(kOne));
    sqe->flags |= IOSQE_IO_LINK;
    quiet(sqe, Tag::kQuietSockopt);
  }
  sqe = ring_.sqe();
  io_uring_prep_connect(sqe, slot, to.get(), to.length);
  sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_LINK;
  sqe->user_data = data;
  sqe = ring_.sqe();
  io_uring_prep_link_timeout(sqe, const_cast<__kernel_timespec*>(timeout), 0);
  // It ends no later than the connect it guards, and names no session: fired, the connect it
  // cancelled reports -ECANCELED.
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  sqe->user_data = data_plain(Tag::kQuietConnectTimeout);
}

void RingOps::set_recv_lowat(int slot, const int* value, bool before_next) {
  if (before_next) ring_.reserve(2);  // the linked pair in one submission
  io_uring_sqe* sqe = ring_.sqe();
  uring::prep_cmd_sock_direct(sqe, uring::kSocketOpSetsockopt, slot, SOL_SOCKET, SO_RCVLOWAT,
                              const_cast<int*>(value), sizeof(int));
  if (before_next) sqe->flags |= IOSQE_IO_LINK;
  quiet(sqe, Tag::kQuietSockopt);
}

void RingOps::shutdown_write(int slot, uint64_t data) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_shutdown(sqe, slot, SHUT_WR);
  sqe->flags |= IOSQE_FIXED_FILE;
  sqe->user_data = data;
}

void RingOps::cancel(uint64_t target, uint64_t data) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_cancel64(sqe, target, 0);
  sqe->user_data = data;
}

void RingOps::cancel_slot(int slot, uint64_t data) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_cancel_fd(sqe, slot, IORING_ASYNC_CANCEL_FD_FIXED | IORING_ASYNC_CANCEL_ALL);
  sqe->user_data = data;
}

void RingOps::close(int slot) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_close_direct(sqe, static_cast<unsigned>(slot));
  quiet(sqe, Tag::kQuietClose);
  // A slot that arrived (a hand-off while this worker was full) and was closed after its audit
  // probe ran would otherwise look like the lost one.
  if (auditing) closed_during_audit.push_back(slot);
}

void RingOps::dispatch_queue(proxy::QueueVisitor& v) {
  queue_.dispatch([&v](uint32_t id, uint64_t ticket) { return v.current(id, ticket); },
                  [&v](uint32_t id) { return v.can_go(id); }, [&v](uint32_t id) { v.go(id); });
}

void RingOps::arm_queue_poll() {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_timeout(sqe, &queue_poll_ts_, 0, 0);
  sqe->user_data = data_plain(Tag::kQueuePoll);
}

}  // namespace ringlb::worker
