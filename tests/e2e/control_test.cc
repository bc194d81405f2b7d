// The control socket: a `connections` answer that does not fit the socket buffer, a takeover of
// more listeners than one SCM_RIGHTS message of ours carries, and clients that connect and say
// nothing (served beside the others, closed at their command deadline and at shutdown).
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <cstring>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/control/protocol.h"
#include "tests/support/backends.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;

// An echo backend in one thread (poll over every connection), for many idle connections
// without a thread each.
class PollEchoBackend {
 public:
  PollEchoBackend() : listener_(listen_loopback(&port_, 4096)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~PollEchoBackend() {
    stop_ = true;
    thread_.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int connections() const { return count_.load(); }

 private:
  void loop() {
    std::vector<Fd> conns;
    while (!stop_) {
      std::vector<pollfd> fds{{listener_.get(), POLLIN, 0}};
      for (const Fd& c : conns) fds.push_back({c.get(), POLLIN, 0});
      if (poll(fds.data(), fds.size(), 50) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        conns.emplace_back(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        count_ = static_cast<int>(conns.size());
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[4096];
        const ssize_t n = recv(fds[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) write_all(fds[i].fd, buf, static_cast<size_t>(n));
        if (n == 0) shutdown(fds[i].fd, SHUT_WR);
      }
    }
  }

  uint16_t port_ = 0;
  Fd listener_;
  std::atomic<bool> stop_{false};
  std::atomic<int> count_{0};
  std::thread thread_;
};

bool echoes(uint16_t port) {
  Fd fd = connect_loopback(port);
  if (!fd) return false;
  set_recv_timeout(fd.get(), 3000);
  char back[4] = {};
  return write_all(fd.get(), "ping", 4) && read_exact(fd.get(), back, 4) &&
         std::string(back, 4) == "ping";
}

// Connects to a Unix stream socket at `path`.
Fd connect_unix_path(const std::string& path) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return Fd();
  return fd;
}

// The control socket hands out listening sockets: only its owner may connect (0600), whatever
// the umask.
TEST(Control, SocketIsOwnerOnly) {
  PollEchoBackend backend;
  const std::string sock = scratch_socket_path("mode.sock");
  const mode_t old_mask = umask(0);
  RinglbProcess lb;
  const bool started = lb.start({"--listen", "127.0.0.1:0", "--backend", backend.address(), "--workers", "1",
                                 "--control-socket", sock, "--health-interval", "0s"});
  umask(old_mask);
  ASSERT_TRUE(started) << lb.output();
  struct stat st {};
  ASSERT_EQ(stat(sock.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u) << std::oct << (st.st_mode & 0777);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

TEST(Control, UnreadConnectionsAnswerNeverBlocksTheAcceptor) {
  PollEchoBackend backend;
  const std::string sock = scratch_socket_path("unread.sock");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", backend.address(), "--workers", "2",
                        "--control-socket", sock, "--drain-timeout", "2s", "--health-interval", "0s"}))
      << lb.output();
  // Two lines of about 200 bytes per connection: 1200 connections answer with ~450 KiB, twice
  // what a Unix socket buffers by default (net.core.wmem_default, 208 KiB).
  constexpr int kIdle = 1200;
  std::vector<Fd> idle;
  for (int i = 0; i < kIdle; ++i) {
    idle.push_back(connect_loopback(lb.port()));
    ASSERT_TRUE(idle.back()) << i;
  }
  ASSERT_TRUE(eventually([&] { return backend.connections() == kIdle; }, 10s)) << backend.connections();
  ASSERT_TRUE(echoes(lb.port()));  // every earlier connection is through to the backend by now
  Fd ctl = connect_unix_path(sock);
  ASSERT_TRUE(ctl);
  ASSERT_TRUE(write_all(ctl.get(), "connections\n", 12));
  // The ctl client never reads. Meanwhile the acceptor keeps accepting, reloading and draining.
  std::this_thread::sleep_for(1s);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(echoes(lb.port())) << "new client " << i;
  ASSERT_EQ(kill(lb.pid(), SIGHUP), 0);
  EXPECT_TRUE(eventually([&] { return lb.output().find("reloaded") != std::string::npos; }, 3s))
      << lb.output();
  EXPECT_TRUE(echoes(lb.port()));
  // The answer was really larger than the socket holds: the client is dropped at the deadline.
  EXPECT_TRUE(eventually([&] { return lb.output().find("did not take the connections answer") !=
                                      std::string::npos; }, 8s))
      << lb.output();
  // What the socket held is still there to read, and it is not the whole answer.
  const std::string got = read_to_eof(ctl.get(), 2000);
  const auto lines = std::count(got.begin(), got.end(), '\n');
  EXPECT_GT(got.size(), 100u * 1024) << "the socket buffered less than expected";
  EXPECT_LT(lines, 2 * kIdle) << "the whole answer fit in the socket: the test proves nothing";
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
  EXPECT_NE(lb.output().find("draining"), std::string::npos) << lb.output();
}

TEST(Control, UnreadConnectionsAnswerDoesNotHoldUpAShutdown) {
  PollEchoBackend backend;
  const std::string sock = scratch_socket_path("unread2.sock");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", backend.address(),
                        "--control-socket", sock, "--drain-timeout", "1s", "--health-interval", "0s"}))
      << lb.output();
  std::vector<Fd> idle;
  for (int i = 0; i < 1200; ++i) idle.push_back(connect_loopback(lb.port()));
  ASSERT_TRUE(eventually([&] { return backend.connections() == 1200; }, 10s));
  ASSERT_TRUE(echoes(lb.port()));
  Fd ctl = connect_unix_path(sock);
  ASSERT_TRUE(write_all(ctl.get(), "connections\n", 12));
  std::this_thread::sleep_for(500ms);
  // SIGTERM while the answer is stuck: the drain ends, the answer's deadline drops the client,
  // and ringlb exits.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(lb.stop(SIGTERM, 12s), 0) << lb.output();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 8s);
}

TEST(Control, TakeoverOfAHundredListeners) {
  Backend a(name_then_echo_handler('a'));
  const std::string sock = scratch_socket_path("hundred.sock");
  constexpr int kListeners = 100;
  std::vector<std::string> args = {"--backend", a.address(), "--control-socket", sock,
                                   "--drain-timeout", "5s"};
  for (int i = 0; i < kListeners; ++i) args.insert(args.end(), {"--listen", "127.0.0.1:0"});
  RinglbProcess old_lb;
  ASSERT_TRUE(old_lb.start(args)) << old_lb.output();
  std::vector<std::string> new_args = {"--backend", a.address(), "--control-socket", sock,
                                       "--takeover", sock};
  for (int i = 0; i < kListeners; ++i) {
    new_args.insert(new_args.end(), {"--listen", "127.0.0.1:" + std::to_string(old_lb.port(static_cast<size_t>(i)))});
  }
  RinglbProcess new_lb;
  ASSERT_TRUE(new_lb.start(new_args)) << new_lb.output();
  EXPECT_NE(new_lb.output().find("took over 100 listeners"), std::string::npos) << new_lb.output();
  // The old process hands over, drains (nothing is connected) and exits on its own.
  EXPECT_EQ(old_lb.stop(0, 8s), 0) << old_lb.output();
  for (int i = 0; i < kListeners; ++i) {
    EXPECT_EQ(new_lb.port(static_cast<size_t>(i)), old_lb.port(static_cast<size_t>(i)));
    Fd fd = connect_loopback(new_lb.port(static_cast<size_t>(i)));
    set_recv_timeout(fd.get(), 5000);
    char name = 0;
    EXPECT_TRUE(fd && read_exact(fd.get(), &name, 1)) << "listener " << i;
  }
  EXPECT_EQ(new_lb.stop(SIGTERM), 0) << new_lb.output();
}

// `ringlb ctl SOCK WORDS...`: its exit code and output.
RunResult ctl(const std::string& sock, std::vector<std::string> words) {
  std::vector<std::string> argv{runfile("server/ringlb"), "ctl", sock};
  argv.insert(argv.end(), words.begin(), words.end());
  return run_command(argv, 10s);
}

// `n` clients that connect to `sock` and say nothing, each accepted by ringlb when this returns
// (the 9th of test ClientsBeyondTheBoundAreTurnedAway shows when they are not).
std::vector<Fd> silent_clients(const std::string& sock, int n) {
  std::vector<Fd> out;
  for (int i = 0; i < n; ++i) out.push_back(connect_unix_path(sock));
  std::this_thread::sleep_for(200ms);  // accepted meanwhile: the acceptor's ring is idle
  return out;
}

// A silent client used to hold the one place the control socket had: every command got "busy".
TEST(Control, SilentClientDoesNotBlockOtherCommands) {
  PollEchoBackend backend;
  const std::string sock = scratch_socket_path("silent.sock");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", backend.address(), "--control-socket", sock,
                        "--health-interval", "0s"}))
      << lb.output();
  std::vector<Fd> silent = silent_clients(sock, 1);
  ASSERT_TRUE(silent[0]);
  const RunResult r = ctl(sock, {"backends"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(backend.address()), std::string::npos) << r.output;
  const RunResult set = ctl(sock, {"set-weight", "default", backend.address(), "3"});
  EXPECT_EQ(set.exit_code, 0) << set.output;
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

// ... and a takeover then fell back to binding the listeners itself: EADDRINUSE, exit 2.
TEST(Control, TakeoverSucceedsWithASilentClientConnected) {
  Backend a(name_then_echo_handler('a'));
  const std::string sock = scratch_socket_path("silent-takeover.sock");
  RinglbProcess old_lb;
  ASSERT_TRUE(old_lb.start({"--listen", "127.0.0.1:0", "--backend", a.address(), "--control-socket", sock,
                            "--drain-timeout", "5s"}))
      << old_lb.output();
  std::vector<Fd> silent = silent_clients(sock, 2);
  RinglbProcess new_lb;
  ASSERT_TRUE(new_lb.start({"--listen", "127.0.0.1:" + std::to_string(old_lb.port()), "--backend", a.address(),
                            "--control-socket", sock, "--takeover", sock}))
      << new_lb.output();
  EXPECT_NE(new_lb.output().find("took over 1 listeners"), std::string::npos) << new_lb.output();
  EXPECT_EQ(new_lb.output().find("runtime state not carried over"), std::string::npos) << new_lb.output();
  // The old process hands over and exits; its silent clients were told it is stopping.
  EXPECT_EQ(old_lb.stop(0, 4s), 0) << old_lb.output();
  for (Fd& c : silent) EXPECT_EQ(read_to_eof(c.get(), 2000), "busy\n");
  EXPECT_EQ(name_from(new_lb.port()).substr(0, 1), "a");
  EXPECT_EQ(new_lb.stop(SIGTERM), 0) << new_lb.output();
}

// ... and SIGTERM never completed: the acceptor waited for that client to go.
TEST(Control, SigtermEndsWithASilentClientConnected) {
  PollEchoBackend backend;
  const std::string sock = scratch_socket_path("silent-stop.sock");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", backend.address(), "--control-socket", sock,
                        "--drain-timeout", "2s", "--health-interval", "0s"}))
      << lb.output();
  std::vector<Fd> silent = silent_clients(sock, 3);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(lb.stop(SIGTERM, 10s), 0) << lb.output();
  // Nothing to drain: well within the drain timeout, and long before the command deadline.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  for (Fd& c : silent) EXPECT_EQ(read_to_eof(c.get(), 1000), "busy\n");
}

// A client that never finishes its command line is closed at the command deadline, and counted.
TEST(Control, CommandDeadlineClosesASilentClient) {
  PollEchoBackend backend;
  const std::string sock = scratch_socket_path("deadline.sock");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", backend.address(), "--control-socket", sock,
                        "--health-interval", "0s"}))
      << lb.output();
  const auto t0 = std::chrono::steady_clock::now();
  Fd silent = connect_unix_path(sock);
  Fd slow = connect_unix_path(sock);  // a byte a second: the deadline is for the whole line
  ASSERT_TRUE(silent && slow);
  std::thread drip([&] {
    for (int i = 0; i < 8 && write_all(slow.get(), "b", 1); ++i) std::this_thread::sleep_for(1s);
  });
  EXPECT_TRUE(readable_within(silent.get(), 8000)) << "still open after 8 s";
  const auto closed_after = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(read_to_eof(silent.get(), 1000), "");
  EXPECT_GE(closed_after, 4500ms);
  EXPECT_LT(closed_after, 7s);
  EXPECT_TRUE(readable_within(slow.get(), 3000)) << "the slow client is still open";
  EXPECT_EQ(read_to_eof(slow.get(), 1000), "");
  drip.join();
  EXPECT_NE(lb.output().find("control: a client sent no command within 5s; closed"), std::string::npos)
      << lb.output();
  EXPECT_EQ(lb.metric("ringlb_control_clients_dropped_total", {"reason=\"command_timeout\""}), 2);
  // The places are free again.
  EXPECT_EQ(ctl(sock, {"backends"}).exit_code, 0);
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

// Eight clients are served at once; the next is told "busy" and closed, and one more fits once
// a place is free.
TEST(Control, ClientsBeyondTheBoundAreTurnedAway) {
  PollEchoBackend backend;
  const std::string sock = scratch_socket_path("bound.sock");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", backend.address(), "--control-socket", sock,
                        "--health-interval", "0s"}))
      << lb.output();
  std::vector<Fd> held = silent_clients(sock, 8);
  Fd ninth = connect_unix_path(sock);
  ASSERT_TRUE(ninth);
  EXPECT_EQ(read_to_eof(ninth.get(), 2000), "busy\n");
  const RunResult refused = ctl(sock, {"backends"});
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("busy"), std::string::npos) << refused.output;
  EXPECT_EQ(lb.metric("ringlb_control_clients_dropped_total", {"reason=\"busy\""}), 2);
  // Every one of the eight is served (none was told "busy").
  for (size_t i = 0; i < held.size(); ++i) {
    ASSERT_TRUE(write_all(held[i].get(), "backends\n", 9));
    const std::string answer = read_to_eof(held[i].get(), 2000);
    EXPECT_NE(answer.find(backend.address()), std::string::npos) << "client " << i << ": " << answer;
  }
  EXPECT_EQ(ctl(sock, {"backends"}).exit_code, 0);
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

// One takeover at a time. While it runs, reading commands are served and changes are refused
// (the new process has already copied the runtime state); once it is aborted, changes work again.
TEST(Control, TakeoverIsExclusive) {
  PollEchoBackend backend;
  const std::string sock = scratch_socket_path("exclusive.sock");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", backend.address(), "--control-socket", sock,
                        "--health-interval", "0s"}))
      << lb.output();
  std::vector<InheritedListener> inherited;
  int conn = -1;
  const Status first = request_listeners(sock, &inherited, &conn);
  ASSERT_TRUE(first.ok()) << first.message();
  Fd takeover(conn);
  for (InheritedListener& l : inherited) close(l.fd);
  std::vector<InheritedListener> second_listeners;
  int second_conn = -1;
  const Status second = request_listeners(sock, &second_listeners, &second_conn);
  EXPECT_FALSE(second.ok());
  EXPECT_NE(second.message().find("another takeover is in progress"), std::string::npos) << second.message();
  EXPECT_EQ(ctl(sock, {"backends"}).exit_code, 0);
  const RunResult change = ctl(sock, {"drain", "default", backend.address()});
  EXPECT_EQ(change.exit_code, 1) << change.output;
  EXPECT_NE(change.output.find("a takeover is in progress"), std::string::npos) << change.output;
  takeover.reset();  // gone before "ready": aborted, and this process still serves
  EXPECT_TRUE(eventually([&] { return lb.output().find("takeover aborted") != std::string::npos; }, 3s))
      << lb.output();
  const RunResult again = ctl(sock, {"drain", "default", backend.address()});
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

}  // namespace
}  // namespace ringlb::testing
