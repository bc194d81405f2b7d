// Handing a connection from one thread to another, as the acceptor does for every client:
// io_uring msg_ring (the kernel moves the file into the target ring's descriptor table and posts
// a completion there) against the usual user-space alternative, a mutex-protected queue plus an
// eventfd wake-up. Also: accepts per second through an acceptor ring alone.
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include "server/uring/compat.h"
#include "server/uring/file_table.h"
#include "server/uring/ring.h"

namespace ringlb::uring {
namespace {

constexpr uint64_t kStop = ~0ULL;
constexpr uint64_t kReply = 1;
constexpr int kBatch = 64;

RingOptions thread_ring() {
  RingOptions o;
  o.entries = 256;
  o.cq_entries = 4096;
  return o;
}

// The receiving worker: takes each descriptor, closes its slot, and after every `ack_every`
// descriptors messages the sender back.
void msg_ring_receiver(std::promise<int>* ready, std::atomic<int>* sender_fd, int ack_every) {
  Ring ring;
  ring.init(thread_ring());
  FileTable table;
  table.init(ring, 1024);
  ready->set_value(ring.fd());
  int received = 0;
  for (;;) {
    io_uring_submit_and_wait(ring.get(), 1);
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    bool stop = false;
    io_uring_for_each_cqe(ring.get(), head, cqe) {
      ++seen;
      if (cqe->user_data == kStop) stop = true;
      if (cqe->user_data != 7 || cqe->res < 0) continue;
      io_uring_sqe* sqe = ring.sqe();
      io_uring_prep_close_direct(sqe, static_cast<unsigned>(cqe->res));
      sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
      if (++received % ack_every == 0) {
        sqe = ring.sqe();
        prep_msg_ring_data(sqe, sender_fd->load(), 0, kReply);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
      }
    }
    io_uring_cq_advance(ring.get(), seen);
    if (stop) return;
  }
}

void run_msg_ring(benchmark::State& state, int per_iteration) {
  Ring ring;
  ring.init(thread_ring());
  FileTable table;
  table.init(ring, 4);
  const int sock = socket(AF_INET, SOCK_STREAM, 0);
  table.install_fd(0, sock);
  close(sock);
  std::atomic<int> my_fd{ring.fd()};
  std::promise<int> ready;
  std::thread receiver(msg_ring_receiver, &ready, &my_fd, per_iteration);
  const int target = ready.get_future().get();
  for (auto _ : state) {
    for (int i = 0; i < per_iteration; ++i) {
      io_uring_sqe* sqe = ring.sqe();
      prep_msg_ring_fd_alloc(sqe, target, 0, 7, 0);
      sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    }
    // Wait for the receiver's acknowledgement of the whole batch.
    for (bool acked = false; !acked;) {
      io_uring_submit_and_wait(ring.get(), 1);
      io_uring_cqe* cqe;
      while (io_uring_peek_cqe(ring.get(), &cqe) == 0) {
        acked = acked || cqe->user_data == kReply;
        if (cqe->user_data != kReply && cqe->res < 0) state.SkipWithError("msg_ring failed");
        io_uring_cqe_seen(ring.get(), cqe);
      }
    }
  }
  uring::run_one(ring, [&](io_uring_sqe* sqe) { prep_msg_ring_data(sqe, target, 0, kStop); });
  receiver.join();
  state.SetItemsProcessed(state.iterations() * per_iteration);
}

// The alternative: a locked queue of fds and an eventfd to wake the receiver, one write per push.
struct LockedQueue {
  std::mutex mu;
  std::deque<int> fds;
  int wake = eventfd(0, EFD_CLOEXEC);
  int reply = eventfd(0, EFD_CLOEXEC);
  ~LockedQueue() {
    close(wake);
    close(reply);
  }
};

void run_locked_queue(benchmark::State& state, int per_iteration) {
  LockedQueue q;
  std::atomic<bool> stop{false};
  const int sock = socket(AF_INET, SOCK_STREAM, 0);
  std::thread receiver([&] {
    int received = 0;
    for (;;) {
      uint64_t v;
      if (read(q.wake, &v, sizeof(v)) != sizeof(v)) return;
      std::deque<int> got;
      {
        std::lock_guard<std::mutex> lock(q.mu);
        got.swap(q.fds);
      }
      if (stop.load()) return;
      for (int fd : got) {
        benchmark::DoNotOptimize(fd);
        if (++received % per_iteration == 0) {
          uint64_t one = 1;
          if (write(q.reply, &one, sizeof(one)) != sizeof(one)) return;
        }
      }
    }
  });
  for (auto _ : state) {
    for (int i = 0; i < per_iteration; ++i) {
      {
        std::lock_guard<std::mutex> lock(q.mu);
        q.fds.push_back(sock);
      }
      uint64_t one = 1;
      if (write(q.wake, &one, sizeof(one)) != sizeof(one)) state.SkipWithError("eventfd");
    }
    uint64_t v;
    if (read(q.reply, &v, sizeof(v)) != sizeof(v)) state.SkipWithError("eventfd");
  }
  stop = true;
  uint64_t one = 1;
  if (write(q.wake, &one, sizeof(one)) != sizeof(one)) state.SkipWithError("eventfd");
  receiver.join();
  close(sock);
  state.SetItemsProcessed(state.iterations() * per_iteration);
}

// One descriptor, then wait for the answer: a round trip per iteration (latency).
void BM_HandoffLatency_MsgRing(benchmark::State& state) { run_msg_ring(state, 1); }
void BM_HandoffLatency_LockedQueueEventfd(benchmark::State& state) { run_locked_queue(state, 1); }
// 64 descriptors back to back, then one answer: throughput.
void BM_HandoffRate_MsgRing(benchmark::State& state) { run_msg_ring(state, kBatch); }
void BM_HandoffRate_LockedQueueEventfd(benchmark::State& state) { run_locked_queue(state, kBatch); }
BENCHMARK(BM_HandoffLatency_MsgRing)->UseRealTime();
BENCHMARK(BM_HandoffLatency_LockedQueueEventfd)->UseRealTime();
BENCHMARK(BM_HandoffRate_MsgRing)->UseRealTime();
BENCHMARK(BM_HandoffRate_LockedQueueEventfd)->UseRealTime();

// Accepts per second through an acceptor ring alone: a direct listener made through io_uring,
// multishot accept into direct slots, each slot closed again; a client thread connects.
void BM_AcceptorAccepts(benchmark::State& state) {
  constexpr int kPerIteration = 256;
  Ring ring;
  ring.init(thread_ring());
  FileTable table;
  table.init(ring, 4096);
  const int lslot = run_one(ring, [](io_uring_sqe* sqe) {
    io_uring_prep_socket_direct_alloc(sqe, AF_INET, SOCK_STREAM, 0, 0);
  });
  int one = 1;
  run_one(ring, [&](io_uring_sqe* sqe) {
    prep_cmd_sock_direct(sqe, kSocketOpSetsockopt, lslot, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  });
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  run_one(ring, [&](io_uring_sqe* sqe) {
    prep_bind_direct(sqe, lslot, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  });
  run_one(ring, [&](io_uring_sqe* sqe) { prep_listen_direct(sqe, lslot, 4096); });
  const int fd = run_one(ring, [&](io_uring_sqe* sqe) { prep_fixed_fd_install(sqe, lslot, 0); });
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  io_uring_sqe* sqe = ring.sqe();
  io_uring_prep_multishot_accept_direct(sqe, lslot, nullptr, nullptr, 0);
  sqe->flags |= IOSQE_FIXED_FILE;
  sqe->user_data = 1;
  std::atomic<bool> stop{false};
  std::atomic<long> allowed{0};
  std::thread client([&] {
    long made = 0;
    while (!stop.load()) {
      if (made >= allowed.load()) {
        std::this_thread::yield();
        continue;
      }
      int c = socket(AF_INET, SOCK_STREAM, 0);
      if (connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) ++made;
      close(c);
    }
  });
  long accepted = 0;
  for (auto _ : state) {
    allowed.fetch_add(kPerIteration);
    const long target = accepted + kPerIteration;
    while (accepted < target) {
      io_uring_submit_and_wait(ring.get(), 1);
      io_uring_cqe* cqe;
      while (io_uring_peek_cqe(ring.get(), &cqe) == 0) {
        if (cqe->user_data == 1 && cqe->res >= 0) {
          ++accepted;
          io_uring_sqe* close_sqe = ring.sqe();
          io_uring_prep_close_direct(close_sqe, static_cast<unsigned>(cqe->res));
          close_sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
          close_sqe->user_data = 2;
        }
        io_uring_cqe_seen(ring.get(), cqe);
      }
    }
  }
  stop = true;
  client.join();
  state.SetItemsProcessed(accepted);
}
// Bounded: 20 x 256 connections per run, so the client's TIME_WAIT ports stay few.
BENCHMARK(BM_AcceptorAccepts)->Iterations(20)->UseRealTime();

}  // namespace
}  // namespace ringlb::uring

BENCHMARK_MAIN();
