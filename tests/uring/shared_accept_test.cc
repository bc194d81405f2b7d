// A kernel fact a takeover depends on: two rings' multishot accepts on one listening socket (the
// old and the new process during a hand-over) wait on it as exclusive waiters, so a new client
// wakes only the first one. If that one is cancelled after the wake-up and before it accepted
// (the old process stopping), nobody else is woken: the client stays in the accept queue until
// the next client comes or someone tries accept() again. So the new process must arm its
// accepts only once the old one's are over; an accept armed then tries the queue first.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <thread>

#include "server/uring/compat.h"
#include "server/uring/ring.h"
#include "tests/support/net.h"

namespace ringlb::uring {
namespace {

using namespace std::chrono_literals;
using ringlb::testing::Fd;

constexpr uint64_t kAccept = 1, kCancel = 2;

void arm_accept(Ring& ring, int listener) {
  io_uring_sqe* sqe = ring.sqe();
  io_uring_prep_multishot_accept(sqe, listener, nullptr, nullptr, SOCK_CLOEXEC);
  sqe->user_data = kAccept;
  ASSERT_GE(ring.submit(), 0);
}

// Completions of `ring` for `wait`, as (accepted clients, whether the accept ended).
struct Seen {
  int accepted = 0;
  bool ended = false;
};
Seen reap_for(Ring& ring, std::chrono::milliseconds wait) {
  Seen seen;
  const auto end = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < end) {
    __kernel_timespec ts{0, 10'000'000};
    io_uring_cqe* cqe = nullptr;
    io_uring_wait_cqe_timeout(ring.get(), &cqe, &ts);
    ring.reap([&](const io_uring_cqe* c) {
      if (c->user_data != kAccept) return;
      if (c->res >= 0) {
        ++seen.accepted;
        close(c->res);
      }
      if (!(c->flags & IORING_CQE_F_MORE)) seen.ended = true;
    });
  }
  return seen;
}

TEST(SharedAccept, CancelledWokenAcceptStrandsTheClientForTheOtherRing) {
  uint16_t port = 0;
  Fd listener = ringlb::testing::listen_loopback(&port);
  ASSERT_TRUE(listener);
  Ring old_ring, new_ring;  // each DEFER_TASKRUN, as ringlb's acceptor: work runs when it waits
  ASSERT_EQ(old_ring.init(RingOptions{}), 0);
  ASSERT_EQ(new_ring.init(RingOptions{}), 0);
  arm_accept(old_ring, listener.get());  // first in the socket's wait queue
  arm_accept(new_ring, listener.get());

  // A client: its arrival wakes the old ring's accept only, whose work waits for that ring's
  // thread to wait for completions, which it does not do before it cancels.
  Fd client = ringlb::testing::connect_loopback(port);
  ASSERT_TRUE(client);
  std::this_thread::sleep_for(20ms);
  io_uring_sqe* sqe = old_ring.sqe();
  io_uring_prep_cancel64(sqe, kAccept, 0);
  sqe->user_data = kCancel;
  ASSERT_GE(old_ring.submit(), 0);
  const Seen old_seen = reap_for(old_ring, 100ms);
  EXPECT_TRUE(old_seen.ended);
  EXPECT_EQ(old_seen.accepted, 0) << "the old ring accepted before its cancel ran";

  // The new ring, waiting on the same socket, is not told about the client...
  EXPECT_EQ(reap_for(new_ring, 300ms).accepted, 0);
  pollfd p{listener.get(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 1) << "the client waits in the accept queue";
  // ...until an accept armed after the cancel, which tries the queue before it waits.
  Ring later;
  ASSERT_EQ(later.init(RingOptions{}), 0);
  arm_accept(later, listener.get());
  EXPECT_EQ(reap_for(later, 300ms).accepted, 1);
}

}  // namespace
}  // namespace ringlb::uring
