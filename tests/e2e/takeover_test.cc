// An upgrade by listener takeover (--takeover PATH): the new process takes the running one's
// listening sockets and its runtime state, and no client is lost or kept waiting on the way.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "server/base/address.h"
#include "server/control/protocol.h"
#include "tests/support/backends.h"
#include "tests/support/load.h"
#include "tests/support/net.h"
#include "tests/support/process.h"
#include "tests/support/streams.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(Takeover, UnderLoadLosesNothing) {
  Backend a(name_then_echo_handler('a')), b(name_then_echo_handler('b'));
  const std::string sock = scratch_socket_path("takeover.sock");
  const std::vector<std::string> args = {"--listen", "127.0.0.1:0", "--backend", a.address(),
                                         "--backend", b.address(), "--workers", "2",
                                         "--control-socket", sock, "--drain-timeout", "10s"};
  RinglbProcess old_lb;
  ASSERT_TRUE(old_lb.start(args));
  const uint16_t port = old_lb.port();
  std::vector<std::unique_ptr<LongStream>> streams;
  for (int i = 0; i < 4; ++i) streams.push_back(std::make_unique<LongStream>(port, 40));
  ClientLoop load([port] { return name_then_echo_once(port); }, 1, 2ms, 3000);
  std::this_thread::sleep_for(300ms);
  const int old_fds_before = count_open_fds(old_lb.pid());

  std::vector<std::string> new_args = args;
  new_args.insert(new_args.end(), {"--takeover", sock});
  new_args[1] = "127.0.0.1:" + std::to_string(port);
  RinglbProcess new_lb;
  ASSERT_TRUE(new_lb.start(new_args)) << new_lb.output();
  EXPECT_EQ(new_lb.port(), port);
  EXPECT_NE(new_lb.output().find("took over 1 listeners"), std::string::npos) << new_lb.output();
  ASSERT_TRUE(eventually([&] { return old_lb.output().find("handed over") != std::string::npos; }, 5s));
  // Old: the takeover's installed fds are closed again; its control listener is gone.
  EXPECT_LE(count_open_fds(old_lb.pid()), old_fds_before);
  // A first scrape, so that the metrics server's lazily opened descriptors exist in the baseline.
  new_lb.metric("ringlb_connections_accepted_total");
  std::this_thread::sleep_for(100ms);
  const int new_fds = count_open_fds(new_lb.pid());
  std::this_thread::sleep_for(700ms);
  load.finish();
  EXPECT_EQ(load.failed(), 0) << "of " << load.done() + load.failed();
  for (auto& s : streams) {
    if (s->thread.joinable()) s->thread.join();
    EXPECT_TRUE(s->ok) << "a stream that started before the takeover broke";
  }
  // The old process drains its last stream and exits on its own, well before its deadline.
  EXPECT_EQ(old_lb.stop(0, 8s), 0) << old_lb.output();
  // The new one serves, and traffic did not leak fds there either.
  const double before = new_lb.metric("ringlb_connections_accepted_total");
  ClientLoop more([port] { return name_then_echo_once(port); }, 1, 2ms, 3000);
  std::this_thread::sleep_for(300ms);
  more.finish();
  EXPECT_EQ(more.failed(), 0);
  EXPECT_GT(new_lb.metric("ringlb_connections_accepted_total"), before);
  // (The scrape just above may still hold its socket for a moment.)
  EXPECT_TRUE(eventually([&] { return count_open_fds(new_lb.pid()) == new_fds; }, 2s))
      << count_open_fds(new_lb.pid()) << " fds, was " << new_fds;
  EXPECT_EQ(old_lb.output().find("takeover aborted"), std::string::npos);
}

TEST(Takeover, FromNobodyBindsItself) {
  Backend a(name_then_echo_handler('a'));
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", a.address(), "--takeover",
                        scratch_socket_path("nobody.sock")}))
      << lb.output();
  EXPECT_NE(lb.output().find("cannot reach"), std::string::npos) << lb.output();
  Fd fd = connect_loopback(lb.port());
  char name = 0;
  set_recv_timeout(fd.get(), 5000);
  EXPECT_TRUE(read_exact(fd.get(), &name, 1));
}

TEST(Takeover, WithWrongAnswerAndBusyAddressExitsTwo) {
  // Something that is not ringlb answers on the control path, and the address is still held.
  const std::string sock = scratch_socket_path("impostor.sock");
  Fd impostor(listen_unix(sock));  // protocol.h's, as ringlb makes its control socket
  ASSERT_TRUE(impostor);
  std::thread answer([&] {
    pollfd p{impostor.get(), POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0) return;
    Fd c(accept(impostor.get(), nullptr, nullptr));
    char buf[64];
    recv(c.get(), buf, sizeof(buf), 0);
    write_all(c.get(), "hello\n", 6);
  });
  uint16_t port = 0;
  Fd held = listen_loopback(&port);
  RunResult r = run_command({runfile("server/ringlb"), "--listen", "127.0.0.1:" + std::to_string(port),
                             "--backend", "127.0.0.1:1", "--takeover", sock, "--metrics-listen", "none"});
  answer.join();
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("answered wrongly"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("in use"), std::string::npos) << r.output;
}

// One line from a control connection (without its newline), or "" after 5 s.
std::string read_line(int fd) {
  set_recv_timeout(fd, 5000);
  std::string line;
  char c = 0;
  while (recv(fd, &c, 1, 0) == 1 && c != '\n') line += c;
  return line;
}

// The new process arms its accepts only once the old one has closed the takeover connection,
// which the old one does when its own accepts are over. Two processes' accepts on one socket
// are exclusive waiters, so a client woken in the old process just as it stopped would
// otherwise wait in the queue for the next client (tests/uring/shared_accept_test). Here a
// stand-in for the old process hands over a listening socket and holds the connection 800 ms
// after "ready": a client that connects meanwhile is served only after the close, and then at
// once.
TEST(Takeover, AcceptsOnlyOnceTheOldProcessHasStopped) {
  using Ms = std::chrono::milliseconds;
  Backend a(name_then_echo_handler('a'));
  uint16_t port = 0;
  Fd listener = listen_loopback(&port);
  const std::string sock = scratch_socket_path("handover.sock");
  Fd control(listen_unix(sock));
  ASSERT_TRUE(control);
  const auto t0 = Clock::now();
  auto since = [t0] { return std::chrono::duration_cast<Ms>(Clock::now() - t0).count(); };
  std::atomic<int64_t> ready_at{-1}, closed_at{-1};
  std::thread old_process([&] {
    for (int i = 0; i < 2; ++i) {  // the takeover asks for "overrides", then for "listeners"
      pollfd p{control.get(), POLLIN, 0};
      if (poll(&p, 1, 10000) <= 0) return;
      Fd c(accept(control.get(), nullptr, nullptr));
      if (read_line(c.get()) != "listeners") continue;  // no runtime state: closed unanswered
      Address listening;
      std::string error;
      ASSERT_TRUE(parse_address("127.0.0.1:" + std::to_string(port), &listening, &error)) << error;
      ASSERT_EQ(send_listeners(c.get(), {listening}, {listener.get()}), 0);
      ASSERT_EQ(read_line(c.get()), "ready");
      ready_at = since();
      std::this_thread::sleep_for(800ms);  // still accepting, as far as the new process knows
      closed_at = since();
      return;  // closes c
    }
  });
  std::atomic<int64_t> served_at{-1};
  std::thread client([&] {
    while (ready_at.load() < 0 && since() < 10000) std::this_thread::sleep_for(5ms);
    std::this_thread::sleep_for(200ms);
    Fd fd = connect_loopback(port);
    char name = 0;
    set_recv_timeout(fd.get(), 5000);
    if (fd && read_exact(fd.get(), &name, 1) && name == 'a') served_at = since();
  });
  RinglbProcess lb;
  EXPECT_TRUE(lb.start({"--listen", "127.0.0.1:" + std::to_string(port), "--backend", a.address(),
                        "--takeover", sock})) << lb.output();
  client.join();
  old_process.join();
  ASSERT_GE(ready_at.load(), 0) << lb.output();
  ASSERT_GE(served_at.load(), 0) << "the client was never served; " << lb.output();
  EXPECT_GE(served_at.load(), closed_at.load()) << "accepted while the old process still accepted";
  EXPECT_LT(served_at.load() - closed_at.load(), 3000) << "not at once after the old process stopped";
  EXPECT_NE(lb.output().find("took over 1 listeners"), std::string::npos) << lb.output();
}

// A SIGTERM that reaches the old process while it hands its listeners over: it drains at once,
// and when "ready" comes its accepts are already over, so it closes the takeover connection
// straight away and exits (it used to wait for an end of its accepts that had already come).
TEST(Takeover, OfADrainingProcessCompletesAndItExits) {
  Backend a(name_then_echo_handler('a'));
  const std::string sock = scratch_socket_path("draining.sock");
  RinglbProcess old_lb;
  ASSERT_TRUE(old_lb.start({"--listen", "127.0.0.1:0", "--backend", a.address(), "--control-socket", sock,
                            "--drain-timeout", "10s"}))
      << old_lb.output();
  // This test is the new process: it takes the listeners, then the old one is told to stop.
  std::vector<InheritedListener> inherited;
  int conn = -1;
  const Status taken = request_listeners(sock, &inherited, &conn);
  ASSERT_TRUE(taken.ok()) << taken.message();
  Fd takeover(conn);
  for (InheritedListener& l : inherited) close(l.fd);
  ASSERT_EQ(kill(old_lb.pid(), SIGTERM), 0);
  ASSERT_TRUE(eventually([&] { return old_lb.output().find("no longer accepting") != std::string::npos; }))
      << old_lb.output();
  ASSERT_TRUE(write_all(takeover.get(), "ready\n", 6));
  EXPECT_EQ(wait_handed_over(takeover.get(), 2000), 0) << "the old process did not close the takeover connection";
  EXPECT_EQ(old_lb.stop(0, 5s), 0) << "the old process did not exit after its drain\n" << old_lb.output();
}

// A takeover is ready only once the new process can serve. Its start-up waits for its DNS
// names' first answers, up to one lookup's time (2 s here: the server never answers). It used to
// say "ready" before that wait, so the old process stopped accepting while the new one did not
// accept yet, and every client connecting meanwhile sat in the backlog for the rest of the wait.
TEST(Takeover, ReadyOnlyOnceItCanServeAClientNeverWaitsForASilentResolver) {
  Backend a(name_then_echo_handler('a'));
  // The DNS server: a UDP socket that nobody reads, so every query times out.
  Fd silent(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in dns{};
  dns.sin_family = AF_INET;
  dns.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(silent.get(), reinterpret_cast<sockaddr*>(&dns), sizeof(dns)), 0);
  socklen_t len = sizeof(dns);
  ASSERT_EQ(getsockname(silent.get(), reinterpret_cast<sockaddr*>(&dns), &len), 0);
  TempDir dir;
  const std::string config = dir.path() + "/lb.toml";
  // Port 0 in both processes: the new one takes the old one's socket for the same host.
  std::ofstream(config) << "workers = 2\n[resolvers]\nnameservers = [\"127.0.0.1:" << ntohs(dns.sin_port)
                        << "\"]\ntimeout = \"2s\"\nattempts = 1\n[cluster.web]\nbackends = [\"" << a.address()
                        << "\", \"db.test:80\"]\n[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n";
  const std::string sock = scratch_socket_path("slow-dns.sock");
  RinglbProcess old_lb;
  ASSERT_TRUE(old_lb.start({"--config", config, "--control-socket", sock})) << old_lb.output();
  const uint16_t port = old_lb.port();
  // One client after another through the hand-over, each timed from its connect to its echo.
  std::atomic<int64_t> slowest_ms{0};
  ClientLoop load(
      [&] {
        const auto t0 = Clock::now();
        const bool served = name_then_echo_once(port);
        const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
        for (int64_t was = slowest_ms.load(); ms > was && !slowest_ms.compare_exchange_weak(was, ms);) {
        }
        return served;
      },
      1, 2ms);
  std::this_thread::sleep_for(200ms);
  RinglbProcess new_lb;
  const auto started = Clock::now();
  ASSERT_TRUE(new_lb.start({"--config", config, "--control-socket", sock, "--takeover", sock})) << new_lb.output();
  EXPECT_GE(Clock::now() - started, 1500ms) << "the new process did not wait for its DNS name";
  EXPECT_EQ(new_lb.port(), port);
  EXPECT_NE(new_lb.output().find("took over 1 listeners"), std::string::npos) << new_lb.output();
  ASSERT_TRUE(eventually([&] { return old_lb.output().find("handed over") != std::string::npos; }, 5s));
  std::this_thread::sleep_for(300ms);
  load.finish();
  EXPECT_EQ(load.failed(), 0) << "of " << load.done() + load.failed();
  EXPECT_GT(load.done(), 50);
  EXPECT_LT(slowest_ms.load(), 1000) << "a client waited while neither process accepted";
}

}  // namespace
}  // namespace ringlb::testing
