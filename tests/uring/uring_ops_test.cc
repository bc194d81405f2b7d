// Drives each io_uring operation ringlb relies on against real loopback sockets on this kernel.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <string>
#include <thread>

#include "server/uring/buffer_region.h"
#include "server/uring/compat.h"
#include "server/uring/file_table.h"
#include "server/uring/probe.h"
#include "server/uring/ring.h"
#include "tests/support/net.h"

namespace ringlb::uring {
namespace {

using ringlb::testing::connect_loopback;
using ringlb::testing::Fd;

RingOptions thread_ring_options() {
  RingOptions o;
  o.entries = 64;
  o.cq_entries = 256;
  return o;
}

// Creates a listening direct socket entirely through io_uring; returns its slot or -errno.
int make_direct_listener(Ring& ring, uint16_t* port_out, FileTable& table) {
  int slot = run_one(ring, [](io_uring_sqe* sqe) {
    io_uring_prep_socket_direct_alloc(sqe, AF_INET, SOCK_STREAM, 0, 0);
  });
  if (slot < 0) return slot;
  int one = 1;
  int ret = run_one(ring, [&](io_uring_sqe* sqe) {
    prep_cmd_sock_direct(sqe, kSocketOpSetsockopt, slot, SOL_SOCKET, SO_REUSEADDR, &one,
                         sizeof(one));
  });
  if (ret < 0) return ret;
  sockaddr_in addr = ringlb::testing::loopback(0);
  ret = run_one(ring, [&](io_uring_sqe* sqe) {
    prep_bind_direct(sqe, slot, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  });
  if (ret < 0) return ret;
  ret = run_one(ring, [&](io_uring_sqe* sqe) { prep_listen_direct(sqe, slot, 128); });
  if (ret < 0) return ret;
  // BIND does not report the chosen port: learn it through a regular fd installed for the purpose.
  int fd = run_one(ring, [&](io_uring_sqe* sqe) { prep_fixed_fd_install(sqe, slot, 0); });
  if (fd < 0) return fd;
  *port_out = ringlb::testing::local_port(fd);
  close(fd);
  (void)table;
  return slot;
}

// A ring with a direct listening socket made through io_uring, and one real client accepted into
// a direct slot.
struct AcceptedClient {
  Ring ring;
  FileTable table;
  uint16_t port = 0;
  int listen_slot = -1;
  Fd client;
  int slot = -1;

  // Fills everything in; false (with a gtest failure) if any step fails.
  bool open() {
    EXPECT_EQ(ring.init(thread_ring_options()), 0);
    EXPECT_EQ(table.init(ring, 16), 0);
    listen_slot = make_direct_listener(ring, &port, table);
    EXPECT_GE(listen_slot, 0) << strerror(-listen_slot);
    if (listen_slot < 0) return false;
    client = connect_loopback(port);
    EXPECT_TRUE(client);
    slot = run_one(ring, [&](io_uring_sqe* sqe) { prep_accept_direct_alloc(sqe, listen_slot, 0); });
    EXPECT_GE(slot, 0) << strerror(-slot);
    return client && slot >= 0;
  }
};

io_uring_cqe* wait_cqe(Ring& ring) {
  io_uring_cqe* cqe = nullptr;
  int ret;
  do {
    ret = io_uring_submit_and_wait(ring.get(), 1);
  } while (ret == -EINTR);
  ret = io_uring_peek_cqe(ring.get(), &cqe);
  return ret == 0 ? cqe : nullptr;
}

TEST(Probe, KernelHasEveryOperation) { EXPECT_EQ(check_kernel().message(), ""); }

TEST(Probe, NamesMissingOperationAndKernel) {
  // A probe reporting nothing supported must name each operation with the kernel that has it.
  alignas(io_uring_probe) unsigned char storage[sizeof(io_uring_probe) + 256 * sizeof(io_uring_probe_op)]{};
  auto* probe = reinterpret_cast<io_uring_probe*>(storage);
  probe->last_op = 255;
  std::string msg = missing_ops(probe, required_ops());
  EXPECT_NE(msg.find("BIND (Linux 6.11)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("FIXED_FD_INSTALL (Linux 6.8)"), std::string::npos) << msg;
  // The same probe with every op flagged supported names nothing.
  for (int i = 0; i < 256; ++i) probe->ops[i].flags = IO_URING_OP_SUPPORTED;
  EXPECT_EQ(missing_ops(probe, required_ops()), "");
}

TEST(DirectListener, AcceptsRealClientsWithMultishotAcceptDirect) {
  Ring ring;
  ASSERT_EQ(ring.init(thread_ring_options()), 0);
  FileTable table;
  ASSERT_EQ(table.init(ring, 16), 0);
  uint16_t port = 0;
  int lslot = make_direct_listener(ring, &port, table);
  ASSERT_GE(lslot, 0) << strerror(-lslot);
  ASSERT_NE(port, 0);

  io_uring_sqe* sqe = ring.sqe();
  io_uring_prep_multishot_accept_direct(sqe, lslot, nullptr, nullptr, 0);
  sqe->flags |= IOSQE_FIXED_FILE;
  sqe->user_data = 7;
  ASSERT_GE(ring.submit(), 1);

  for (int i = 0; i < 2; ++i) {
    Fd client = connect_loopback(port);
    ASSERT_TRUE(client);
    io_uring_cqe* cqe = wait_cqe(ring);
    ASSERT_NE(cqe, nullptr);
    EXPECT_EQ(cqe->user_data, 7u);
    ASSERT_GE(cqe->res, 0) << strerror(-cqe->res);
    EXPECT_NE(cqe->res, lslot);
    EXPECT_TRUE(cqe->flags & IORING_CQE_F_MORE) << "multishot accept stopped";
    int accepted = cqe->res;
    io_uring_cqe_seen(ring.get(), cqe);
    // Bytes from the client arrive through the accepted direct slot.
    ASSERT_TRUE(ringlb::testing::write_all(client.get(), "ping", 4));
    char buf[8] = {};
    int n = run_one(ring, [&](io_uring_sqe* s) {
      io_uring_prep_recv(s, accepted, buf, sizeof(buf), MSG_WAITALL);
      s->len = 4;
      s->flags |= IOSQE_FIXED_FILE;
    });
    EXPECT_EQ(n, 4);
    EXPECT_EQ(std::string(buf, 4), "ping");
    EXPECT_EQ(table.close_slot(accepted), 0);
  }
  // The listening socket is a direct descriptor: no regular fd in this process refers to it.
  bool found = false;
  for (int fd = 0; fd < 1024; ++fd) {
    if (fcntl(fd, F_GETFD) < 0) continue;
    if (ringlb::testing::local_port(fd) == port) found = true;
  }
  EXPECT_FALSE(found);
}

TEST(FixedFdInstall, GivesRegularFdWithClientsPeerPort) {
  AcceptedClient a;
  ASSERT_TRUE(a.open());
  Ring& ring = a.ring;
  const Fd& client = a.client;
  const int accepted = a.slot;
  int fd = run_one(ring, [&](io_uring_sqe* sqe) { prep_fixed_fd_install(sqe, accepted, 0); });
  ASSERT_GE(fd, 0) << strerror(-fd);
  Fd installed(fd);
  EXPECT_EQ(ringlb::testing::peer_port(fd), ringlb::testing::local_port(client.get()));
  EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC) << "installed fds are O_CLOEXEC by default";
  // Without IOSQE_FIXED_FILE the kernel refuses the install.
  int bad = run_one(ring, [&](io_uring_sqe* sqe) {
    prep_fixed_fd_install(sqe, accepted, 0);
    sqe->flags = 0;
  });
  EXPECT_EQ(bad, -EBADF);
}

// Acceptor-side thread: accepts one client and passes it to `target_ring_fd`.
struct HandoffResult {
  int msg_res = 1;
  int close_res = 1;
  int recv_after_close = 1;
};

TEST(MsgRingFd, PassesConnectionBetweenTwoThreadsRings) {
  std::promise<int> target_fd_promise;
  std::promise<void> done;
  std::string received;
  int received_slot = -1;
  uint64_t received_tag = 0;
  // The worker ring is created in its own thread (SINGLE_ISSUER binds it there).
  std::thread worker([&] {
    Ring ring;
    ASSERT_EQ(ring.init(thread_ring_options()), 0);
    FileTable table;
    ASSERT_EQ(table.init(ring, 8), 0);
    target_fd_promise.set_value(ring.fd());
    io_uring_cqe* cqe = wait_cqe(ring);
    ASSERT_NE(cqe, nullptr);
    received_tag = cqe->user_data;
    received_slot = cqe->res;
    io_uring_cqe_seen(ring.get(), cqe);
    if (received_slot >= 0) {
      char buf[5] = {};
      int n = run_one(ring, [&](io_uring_sqe* s) {
        io_uring_prep_recv(s, received_slot, buf, 5, MSG_WAITALL);
        s->flags |= IOSQE_FIXED_FILE;
      });
      if (n > 0) received.assign(buf, static_cast<size_t>(n));
    }
    done.set_value();
  });
  const int target_fd = target_fd_promise.get_future().get();

  AcceptedClient a;
  ASSERT_TRUE(a.open());
  Ring& ring = a.ring;
  const Fd& client = a.client;
  const int accepted = a.slot;
  int msg = run_one(ring, [&](io_uring_sqe* sqe) {
    prep_msg_ring_fd_alloc(sqe, target_fd, accepted, 0xfeedULL, 0);
  });
  EXPECT_EQ(msg, 0) << strerror(-msg);
  // The sender keeps its own reference: close it, then it is gone from this ring.
  int closed = run_one(ring, [&](io_uring_sqe* sqe) { io_uring_prep_close_direct(sqe, accepted); });
  EXPECT_EQ(closed, 0);
  char tmp[4];
  int stale = run_one(ring, [&](io_uring_sqe* sqe) {
    io_uring_prep_recv(sqe, accepted, tmp, sizeof(tmp), 0);
    sqe->flags |= IOSQE_FIXED_FILE;
  });
  EXPECT_EQ(stale, -EBADF);
  // The connection is still alive: the worker reads the client's bytes through its own slot.
  ASSERT_TRUE(ringlb::testing::write_all(client.get(), "hello", 5));
  done.get_future().wait();
  worker.join();
  EXPECT_EQ(received_tag, 0xfeedULL);
  EXPECT_GE(received_slot, 0);
  EXPECT_EQ(received, "hello");
}

TEST(MsgRingFd, ErrorCasesGiveDocumentedErrno) {
  AcceptedClient a;
  ASSERT_TRUE(a.open());
  Ring& ring = a.ring;
  const int slot = a.slot;
  auto send_to = [&](int target_fd) {
    return run_one(ring, [&](io_uring_sqe* sqe) { prep_msg_ring_fd_alloc(sqe, target_fd, slot, 1, 0); });
  };

  // A disabled target ring.
  {
    Ring disabled;
    RingOptions o = thread_ring_options();
    o.disabled = true;
    ASSERT_EQ(disabled.init(o), 0);
    EXPECT_EQ(send_to(disabled.fd()), -EBADFD);
  }
  // The own ring.
  EXPECT_EQ(send_to(ring.fd()), -EINVAL);
  // A target whose owning task is gone.
  {
    Ring orphan;
    std::thread([&] { ASSERT_EQ(orphan.init(thread_ring_options()), 0); }).join();
    EXPECT_EQ(send_to(orphan.fd()), -EOWNERDEAD);
  }
  // A full target table: one slot, already taken.
  {
    std::promise<int> fd_promise;
    std::promise<void> release;
    std::thread owner([&] {
      Ring full;
      ASSERT_EQ(full.init(thread_ring_options()), 0);
      FileTable t;
      ASSERT_EQ(t.init(full, 1), 0);
      Fd filler(::socket(AF_INET, SOCK_STREAM, 0));
      ASSERT_EQ(t.install_fd(0, filler.get()), 0);
      fd_promise.set_value(full.fd());
      release.get_future().wait();
    });
    EXPECT_EQ(send_to(fd_promise.get_future().get()), -ENFILE);
    release.set_value();
    owner.join();
  }
  // After every failed hand-off the source slot is still ours and closes cleanly: nothing leaked.
  int closed = run_one(ring, [&](io_uring_sqe* sqe) { io_uring_prep_close_direct(sqe, slot); });
  EXPECT_EQ(closed, 0);
  // A slot that holds nothing gives -EBADF.
  int empty_slot = 15;  // never filled in this 16-slot table
  Ring live_target;
  ASSERT_EQ(live_target.init(thread_ring_options()), 0);
  FileTable live_table;
  ASSERT_EQ(live_table.init(live_target, 4), 0);
  EXPECT_EQ(run_one(ring, [&](io_uring_sqe* sqe) {
              prep_msg_ring_fd_alloc(sqe, live_target.fd(), empty_slot, 1, 0);
            }),
            -EBADF);
}

TEST(CloneBuffers, OneRegionSharedByTwoThreadsRingsWithReadWriteFixed) {
  BufferRegion region;
  ASSERT_EQ(region.init(2, 64 * 1024), 0);
  auto run_worker = [&](unsigned index, std::promise<std::string>* out) {
    Ring ring;
    if (ring.init(thread_ring_options()) != 0) return out->set_value("ring");
    int ret = region.clone_into(ring);
    if (ret != 0) return out->set_value(std::string("clone: ") + strerror(-ret));
    // A second clone into a ring that already has buffers is refused.
    ret = region.clone_into(ring);
    if (ret != -EBUSY) return out->set_value("second clone gave " + std::to_string(ret));
    uint16_t port = 0;
    Fd listener = ringlb::testing::listen_loopback(&port);
    Fd a = connect_loopback(port);
    Fd b(::accept(listener.get(), nullptr, nullptr));
    uint8_t* part = region.part(index);
    const std::string msg = "worker-" + std::to_string(index) + "-payload";
    memcpy(part, msg.data(), msg.size());
    int n = run_one(ring, [&](io_uring_sqe* sqe) {
      io_uring_prep_write_fixed(sqe, a.get(), part, static_cast<unsigned>(msg.size()), 0,
                                static_cast<int>(index));
    });
    if (n != static_cast<int>(msg.size())) return out->set_value("write_fixed " + std::to_string(n));
    uint8_t* dst = part + 4096;
    n = run_one(ring, [&](io_uring_sqe* sqe) {
      io_uring_prep_read_fixed(sqe, b.get(), dst, static_cast<unsigned>(msg.size()), 0,
                               static_cast<int>(index));
    });
    if (n != static_cast<int>(msg.size())) return out->set_value("read_fixed " + std::to_string(n));
    out->set_value(std::string(reinterpret_cast<char*>(dst), msg.size()));
  };
  std::promise<std::string> r0, r1;
  std::thread t0(run_worker, 0, &r0), t1(run_worker, 1, &r1);
  EXPECT_EQ(r0.get_future().get(), "worker-0-payload");
  EXPECT_EQ(r1.get_future().get(), "worker-1-payload");
  t0.join();
  t1.join();
  // The bytes read by each worker's ring landed in the one shared region.
  EXPECT_EQ(std::string(reinterpret_cast<char*>(region.part(1) + 4096), 16), "worker-1-payload");
}

TEST(CloneBuffers, SourceWithoutBuffersGivesEnxio) {
  Ring empty_src, dst;
  RingOptions o = thread_ring_options();
  o.disabled = true;
  ASSERT_EQ(empty_src.init(o), 0);
  ASSERT_EQ(dst.init(thread_ring_options()), 0);
  EXPECT_EQ(clone_buffers(dst.get(), empty_src.get()), -ENXIO);
}

}  // namespace
}  // namespace ringlb::uring
