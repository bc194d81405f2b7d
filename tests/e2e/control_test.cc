// The control socket: a `connections` answer that does not fit the socket buffer, and a
// takeover of more listeners than one SCM_RIGHTS message of ours carries.
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

}  // namespace
}  // namespace ringlb::testing
