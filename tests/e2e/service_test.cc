// ringlb as a system service: the test plays systemd's part of the notify protocol
// (sd_notify(3): a Unix datagram socket named by NOTIFY_SOCKET), and runs ringlb as an
// unprivileged user with only CAP_NET_BIND_SERVICE, as packaging/ringlb.service does.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;

// systemd's end of NOTIFY_SOCKET: a datagram socket, one message per sd_notify call.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    bound_ = bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~NotifySocket() { close(fd_); }
  bool bound() const { return bound_; }

  // The next message, or "" when none came within `timeout`.
  std::string next(std::chrono::milliseconds timeout = 5s) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return "";
    char buf[4096];
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }
  // The next message that is not STATUS= alone (the periodic report).
  std::string next_state(std::chrono::milliseconds timeout = 5s) {
    for (;;) {
      std::string m = next(timeout);
      if (m.empty() || m.rfind("STATUS=", 0) != 0) return m;
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
};

bool has_line(const std::string& message, const std::string& prefix) {
  for (size_t at = 0; at < message.size();) {
    const size_t end = std::min(message.find('\n', at), message.size());
    if (message.compare(at, prefix.size(), prefix) == 0) return true;
    at = end + 1;
  }
  return false;
}

TEST(ServiceTest, NotifiesReadyReloadingAndStopping) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  NotifySocket systemd(dir.path() + "/notify");
  ASSERT_TRUE(systemd.bound());
  Backend backend(echo_handler());
  ScopedEnv env({{"NOTIFY_SOCKET", dir.path() + "/notify"}});
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", backend.address(), "--workers", "1"}))
      << lb.output();

  // Sent after the listeners are bound and the workers run: a client is served at once.
  const std::string ready = systemd.next();
  EXPECT_TRUE(has_line(ready, "READY=1")) << ready;
  EXPECT_TRUE(has_line(ready, "STATUS=serving 0 connections")) << ready;

  // The periodic STATUS= counts live connections.
  Fd client = connect_loopback(lb.port());
  ASSERT_TRUE(write_all(client.get(), "x", 1));
  char echo = 0;
  ASSERT_TRUE(read_exact(client.get(), &echo, 1));
  std::string status;
  const auto deadline = std::chrono::steady_clock::now() + 8s;
  while (std::chrono::steady_clock::now() < deadline && status.find("serving 1 connection") == std::string::npos) {
    status = systemd.next(1s);
  }
  EXPECT_EQ(status, "STATUS=serving 1 connection");

  kill(lb.pid(), SIGHUP);
  const std::string reloading = systemd.next_state();
  EXPECT_TRUE(has_line(reloading, "RELOADING=1")) << reloading;
  EXPECT_TRUE(has_line(reloading, "MONOTONIC_USEC=")) << reloading;  // Type=notify-reload needs it
  const std::string reloaded = systemd.next_state();
  EXPECT_TRUE(has_line(reloaded, "READY=1")) << reloaded;

  client = Fd();
  kill(lb.pid(), SIGTERM);
  const std::string stopping = systemd.next_state();
  EXPECT_TRUE(has_line(stopping, "STOPPING=1")) << stopping;
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(ServiceTest, SaysNothingWithoutNotifySocket) {
  // No NOTIFY_SOCKET: ringlb runs as before (and there is nothing to write to).
  Backend backend(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", backend.address(), "--workers", "1"}))
      << lb.output();
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

// ringlb copied where `nobody` may execute it (Bazel's runfiles are under /root, mode 700).
std::string world_executable_copy(const TempDir& dir) {
  chmod(dir.path().c_str(), 0755);
  const std::string copy = dir.path() + "/ringlb";
  std::filesystem::copy_file(runfile("server/ringlb"), copy);
  chmod(copy.c_str(), 0755);
  return copy;
}

// As the unit runs it: not root, CAP_NET_BIND_SERVICE only (ambient, so it survives the exec).
// Small buffers: registered buffers count against RLIMIT_MEMLOCK without CAP_IPC_LOCK, and
// this machine's default limit (8 MiB) is below the default 16 MiB per worker.
const std::vector<std::string> kUnprivileged = {"--listen", "127.0.0.1:80", "--workers", "1",
                                                "--buffers", "16", "--buffer-size", "65536"};

TEST(ServiceTest, ServesPort80AsNobodyWithOnlyNetBindService) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to become nobody";
  if (access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "no setpriv (util-linux)";
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  ScopedEnv env({{"RINGLB_BINARY", world_executable_copy(dir)}});
  Backend backend(echo_handler());
  RinglbProcess lb;
  lb.set_prefix({"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                 "--inh-caps=-all,+net_bind_service", "--ambient-caps=-all,+net_bind_service",
                 "--bounding-set=-all,+net_bind_service", "--"});
  std::vector<std::string> args = kUnprivileged;
  args.insert(args.end(), {"--backend", backend.address()});
  ASSERT_TRUE(lb.start(args)) << lb.output();
  EXPECT_EQ(lb.port(), 80);
  // It runs as nobody, not root.
  struct stat st {};
  ASSERT_EQ(stat(("/proc/" + std::to_string(lb.pid())).c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);

  Fd client = connect_loopback(80);
  ASSERT_TRUE(write_all(client.get(), "ping", 4));
  char reply[4] = {};
  ASSERT_TRUE(read_exact(client.get(), reply, 4));
  EXPECT_EQ(std::string(reply, 4), "ping");
  client = Fd();
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(ServiceTest, Port80IsRefusedWithoutTheCapability) {
  // The other half: the capability is what makes port 80 work, not something else.
  if (geteuid() != 0) GTEST_SKIP() << "needs root to become nobody";
  if (access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "no setpriv (util-linux)";
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string binary = world_executable_copy(dir);
  std::vector<std::string> argv = {"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                   "--inh-caps=-all", "--bounding-set=-all", "--", binary};
  argv.insert(argv.end(), kUnprivileged.begin(), kUnprivileged.end());
  argv.insert(argv.end(), {"--backend", "127.0.0.1:9", "--metrics-listen", "none"});
  const RunResult r = run_command(argv);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("ermission denied"), std::string::npos) << r.output;
}

TEST(ServiceTest, MemlockLimitIsNamedWhenTheBuffersDoNotFit) {
  // Not root (no CAP_IPC_LOCK) and a locked-memory limit below one worker's buffers: the error
  // says which limit to raise.
  if (geteuid() != 0) GTEST_SKIP() << "needs root to become nobody";
  if (access("/usr/bin/setpriv", X_OK) != 0 || access("/usr/bin/prlimit", X_OK) != 0) GTEST_SKIP();
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const RunResult r = run_command({"prlimit", "--memlock=1048576", "--", "setpriv", "--reuid=nobody",
                                   "--regid=nogroup", "--clear-groups", "--", world_executable_copy(dir),
                                   "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9", "--workers", "1",
                                   "--metrics-listen", "none"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("cannot register 16777216 bytes of buffers per worker"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("LimitMEMLOCK="), std::string::npos) << r.output;
}

}  // namespace
}  // namespace ringlb::testing
