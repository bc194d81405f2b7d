// The worker's mechanics under pressure, over real sockets: a CQ too small for the load, and a
// buffer pool that clients waiting for a backend must not drain.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;

std::string payload(size_t n, size_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = pattern_byte(i + seed);
  return s;
}

// With a CQ of 16 entries, far below what 32 concurrent connections need, completions spill to
// the kernel's overflow list. Nothing may be lost: every stream arrives whole and the worker
// returns to no open slot and no buffer in use.
TEST(Worker, TinyCompletionQueueStillServesEverythingAndLeavesNothing) {
  ScopedEnv tiny(std::vector<std::pair<std::string, std::string>>{{"RINGLB_TEST_WORKER_CQ_ENTRIES", "16"}});
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "1",
                        "--health-interval", "0s", "--buffer-size", "4096"}))
      << lb.output();
  constexpr int kThreads = 32, kRounds = 2;
  std::atomic<int> ok{0}, bad{0};
  // The first round connects while ringlb is stopped: resumed, it finds every client and its
  // bytes at once, so the hand-offs and receives of one batch alone are more than 16 completions.
  ASSERT_EQ(kill(lb.pid(), SIGSTOP), 0);
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        Fd c = connect_loopback(lb.port());
        set_recv_timeout(c.get(), 10000);
        const std::string sent = payload(256 * 1024, static_cast<size_t>(t * 100 + r));
        std::thread writer([&] {
          write_all(c.get(), sent.data(), sent.size());
          shutdown(c.get(), SHUT_WR);
        });
        const std::string got = read_to_eof(c.get(), 10000);
        writer.join();
        (got == sent ? ok : bad)++;
      }
    });
  }
  std::this_thread::sleep_for(300ms);
  ASSERT_EQ(kill(lb.pid(), SIGCONT), 0);
  for (auto& c : clients) c.join();
  EXPECT_EQ(ok.load(), kThreads * kRounds);
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(lb.metric("ringlb_cq_overflows_total"), 0) << "the CQ never overflowed: the test proves nothing";
  EXPECT_EQ(lb.metric("ringlb_cq_dropped_total"), 0);
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_open_direct_slots") == 0; }))
      << lb.metric("ringlb_open_direct_slots");
  EXPECT_EQ(lb.metric("ringlb_proxy_buffers_in_use"), 0);
  EXPECT_EQ(lb.metric("ringlb_connections_active"), 0);
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

// A burst of accept-proxy clients, each with data behind its header, arrives while the only
// backend is full (an outage for them: they queue). Their early bytes must not take the pool's
// buffers, or the connection already proxying stalls until they time out.
TEST(Worker, AcceptProxyClientsWaitingForABackendDoNotStallOneAlreadyProxying) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0,accept-proxy",
                        "--backend", echo.address() + ",max-connections=1", "--workers", "1",
                        "--health-interval", "0s", "--buffers", "8", "--buffer-size", "1024",
                        "--queue-timeout", "20s"}))
      << lb.output();
  // The stream that holds the backend's one connection.
  Fd stream = connect_loopback(lb.port(0));
  set_recv_timeout(stream.get(), 3000);
  const std::string hello = "hello";
  ASSERT_TRUE(write_all(stream.get(), hello.data(), hello.size()));
  std::string back(hello.size(), '\0');
  ASSERT_TRUE(read_exact(stream.get(), back.data(), back.size()));

  // Sixteen clients, twice the pool: each a header and early data in one segment.
  std::vector<Fd> queued;
  for (int i = 0; i < 16; ++i) {
    queued.push_back(connect_loopback(lb.port(1)));
    const std::string sent = "PROXY TCP4 203.0.113." + std::to_string(i + 1) +
                             " 198.51.100.1 4444 443\r\n" + payload(900, static_cast<size_t>(i));
    ASSERT_TRUE(write_all(queued.back().get(), sent.data(), sent.size()));
  }
  ASSERT_TRUE(eventually([&] { return lb.metric("ringlb_queued_connections") == 16; }))
      << lb.metric("ringlb_queued_connections");
  EXPECT_EQ(lb.metric("ringlb_proxy_buffers_in_use"), 0) << "queued clients hold pool buffers";

  // The proxied stream still flows: 256 KiB through 8 buffers of 1 KiB, well within 3 s.
  const std::string more = payload(256 * 1024, 99);
  std::thread writer([&] { write_all(stream.get(), more.data(), more.size()); });
  std::string echoed(more.size(), '\0');
  const bool flowed = read_exact(stream.get(), echoed.data(), echoed.size());
  writer.join();
  EXPECT_TRUE(flowed) << "the proxied stream stalled while clients queued";
  EXPECT_EQ(echoed, more);

  // The backend frees up: the queued clients go one at a time (in accept order, which for
  // clients accepted together is the order their hand-offs arrived), each with its early data
  // first and intact.
  stream.reset();
  for (Fd& c : queued) shutdown(c.get(), SHUT_WR);
  for (size_t i = 0; i < queued.size(); ++i) {
    EXPECT_EQ(read_to_eof(queued[i].get(), 10000), payload(900, i)) << "client " << i;
  }
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_open_direct_slots") == 0; }));
  EXPECT_EQ(lb.metric("ringlb_proxy_buffers_in_use"), 0);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

}  // namespace
}  // namespace ringlb::testing
