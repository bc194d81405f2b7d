// ringlb as a real process: its threads' scheduling and CPU affinity, connection limits, the
// drain at SIGTERM, resetting peers, Unix-socket and IPv6 backends. Split from proxy_test.cc.
#include <dirent.h>
#include <sched.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "tests/support/backends.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Every thread of `pid`: {tid, name (comm)}.
std::vector<std::pair<std::string, std::string>> threads_of(pid_t pid) {
  std::vector<std::pair<std::string, std::string>> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream comm(dir + "/" + e->d_name + "/comm");
    std::string name;
    std::getline(comm, name);
    out.emplace_back(e->d_name, name);
  }
  closedir(d);
  return out;
}

// The threads of a ringlb process, by name (comm) -> Cpus_allowed_list; tid in `tids`.
std::map<std::string, std::string> thread_cpus(pid_t pid, std::map<std::string, std::string>* tids) {
  std::map<std::string, std::string> out;
  for (auto [tid, name] : threads_of(pid)) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/task/" + tid + "/status");
    std::string line, cpus;
    while (std::getline(status, line)) {
      if (line.rfind("Cpus_allowed_list:", 0) == 0) cpus = line.substr(line.find_first_not_of(" \t", 18));
    }
    if (std::to_string(pid) == tid) name = "acceptor";  // the main thread
    out[name] = cpus;
    if (tids) (*tids)[name] = tid;
  }
  return out;
}

// The scheduling policy of a thread (field 41 of its stat): 0 SCHED_OTHER, 3 SCHED_BATCH.
int thread_policy(pid_t pid, const std::string& tid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + tid + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 41 && fields >> field; ++i) {
  }
  return std::stoi(field);
}

// The tids of every thread of `pid` named `name` (io-wq threads of one worker share a name).
std::vector<std::string> tids_named(pid_t pid, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& [tid, comm] : threads_of(pid)) {
    if (comm == name) out.push_back(tid);
  }
  return out;
}

// Reads `fd` until ringlb closes it, expecting no bytes on the way, and returns how long that
// took. The read gives up after 5 s, so a time near 5 s means nothing closed it.
Clock::duration time_until_closed(int fd) {
  const auto t0 = Clock::now();
  EXPECT_EQ(read_to_eof(fd, 5000), "") << "bytes arrived before the close";
  return Clock::now() - t0;
}

TEST(ProxyProcess, AcceptorAndIoWqThreadsRunAsSchedBatchUnlessToldOtherwise) {
  Backend echo(echo_handler());
  RinglbProcess batch, normal;
  ASSERT_TRUE(batch.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "1"}));
  ASSERT_TRUE(normal.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "1",
                            "--acceptor-scheduling", "normal", "--iowq-scheduling", "normal"}));
  // A half-close each: the worker forwards the FIN with a SHUTDOWN, which the kernel runs on an
  // io-wq thread (created on demand unless ringlb made it at start-up). Proxying works either way.
  for (RinglbProcess* lb : {&batch, &normal}) {
    Fd fd = connect_loopback(lb->port());
    ASSERT_TRUE(write_all(fd.get(), "b", 1));
    ASSERT_EQ(shutdown(fd.get(), SHUT_WR), 0);
    EXPECT_EQ(read_to_eof(fd.get(), 5000), "b");
  }
  std::map<std::string, std::string> tids;
  thread_cpus(batch.pid(), &tids);
  EXPECT_EQ(thread_policy(batch.pid(), tids.at("acceptor")), SCHED_BATCH);
  EXPECT_EQ(thread_policy(batch.pid(), tids.at("ringlb-w0")), SCHED_OTHER);  // workers: normal
  const std::vector<std::string> batch_iowq = tids_named(batch.pid(), "iou-wrk-" + tids.at("ringlb-w0"));
  ASSERT_EQ(batch_iowq.size(), 1u) << "one io-wq thread runs the worker's SHUTDOWNs";
  EXPECT_EQ(thread_policy(batch.pid(), batch_iowq[0]), SCHED_BATCH);
  tids.clear();
  thread_cpus(normal.pid(), &tids);
  EXPECT_EQ(thread_policy(normal.pid(), tids.at("acceptor")), SCHED_OTHER);
  const std::vector<std::string> normal_iowq = tids_named(normal.pid(), "iou-wrk-" + tids.at("ringlb-w0"));
  ASSERT_EQ(normal_iowq.size(), 1u);
  EXPECT_EQ(thread_policy(normal.pid(), normal_iowq[0]), SCHED_OTHER);
}

TEST(ProxyProcess, CpuAffinityPinsWorkersTheirIoWqThreadsAndTheAcceptor) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
  }
  Backend echo(echo_handler());
  RinglbProcess plain, pinned;
  ASSERT_TRUE(plain.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "2"}));
  ASSERT_TRUE(pinned.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "2",
                            "--cpu-affinity", "auto"}));
  // A half-close makes the first worker run a SHUTDOWN, which the kernel gives to an io-wq thread.
  Fd fd = connect_loopback(pinned.port());
  ASSERT_TRUE(write_all(fd.get(), "x", 1));
  ASSERT_EQ(shutdown(fd.get(), SHUT_WR), 0);
  EXPECT_EQ(read_to_eof(fd.get(), 5000), "x");

  std::map<std::string, std::string> tids;
  const auto got = thread_cpus(pinned.pid(), &tids);
  ASSERT_TRUE(got.count("ringlb-w0") && got.count("ringlb-w1")) << "worker threads are named";
  EXPECT_EQ(got.at("ringlb-w0"), std::to_string(cpus[0]));
  EXPECT_EQ(got.at("ringlb-w1"), std::to_string(cpus[1 % cpus.size()]));
  EXPECT_EQ(got.at("acceptor"), std::to_string(cpus[0]));
  const std::string iowq = "iou-wrk-" + tids.at("ringlb-w0");
  ASSERT_TRUE(got.count(iowq)) << "no io-wq thread for worker 0";
  EXPECT_EQ(got.at(iowq), std::to_string(cpus[0]));
  if (got.count("ringlb-health")) {
    EXPECT_NE(got.at("ringlb-health"), std::to_string(cpus[0]));  // only the acceptor is pinned
  }

  // Without the flag nothing is pinned: every thread may run on every CPU the test may use.
  const auto free_threads = thread_cpus(plain.pid(), nullptr);
  ASSERT_TRUE(free_threads.count("ringlb-w0"));
  EXPECT_EQ(free_threads.at("ringlb-w0"), free_threads.at("acceptor"));
  if (cpus.size() > 1) {
    EXPECT_NE(free_threads.at("ringlb-w0"), std::to_string(cpus[0]));
  }
}

TEST(ProxyProcess, MaxConnectionsClosesExtraAndResumes) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "2",
                        "--max-connections", "2"}));
  auto roundtrip = [](Fd& fd) {
    char c = 'q', back = 0;
    return write_all(fd.get(), &c, 1) && read_exact(fd.get(), &back, 1) && back == c;
  };
  Fd a = connect_loopback(lb.port()), b = connect_loopback(lb.port());
  ASSERT_TRUE(roundtrip(a));
  ASSERT_TRUE(roundtrip(b));
  Fd extra = connect_loopback(lb.port());
  ASSERT_TRUE(extra);
  EXPECT_EQ(read_to_eof(extra.get(), 3000), "") << "a third connection must be closed at once";
  EXPECT_EQ(lb.closed_total("max_connections"), 1);
  a.reset();
  ASSERT_TRUE(eventually([&] { return lb.metric("ringlb_connections_active") == 1; }));
  Fd again = connect_loopback(lb.port());
  EXPECT_TRUE(roundtrip(again)) << "accepting must resume when the count falls";
}

TEST(ProxyProcess, SigtermDrainsLiveConnectionsThenExits) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "2",
                        "--drain-timeout", "5s"}));
  Fd live = connect_loopback(lb.port());
  char c = 'a', back = 0;
  ASSERT_TRUE(write_all(live.get(), &c, 1) && read_exact(live.get(), &back, 1));
  kill(lb.pid(), SIGTERM);
  std::this_thread::sleep_for(300ms);
  // New clients are refused; the live one keeps working during the drain.
  Fd late = connect_loopback(lb.port());
  EXPECT_FALSE(late) << "listener still accepting after SIGTERM";
  c = 'b';
  ASSERT_TRUE(write_all(live.get(), &c, 1));
  ASSERT_TRUE(read_exact(live.get(), &back, 1));
  EXPECT_EQ(back, 'b');
  shutdown(live.get(), SHUT_WR);
  EXPECT_EQ(read_to_eof(live.get(), 3000), "");
  const auto t0 = Clock::now();
  EXPECT_EQ(lb.stop(0, 5s), 0);  // signal 0: just wait for the exit
  // Within well under a second: the deadline is 5 s, and stopping the metrics server must not
  // add its own 2 s poll quantum either.
  EXPECT_LT(Clock::now() - t0, 800ms) << "exit should follow the last connection, not the deadline";
}

TEST(ProxyProcess, DrainDeadlineClosesWhatRemains) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "1",
                        "--drain-timeout", "700ms"}));
  Fd idle = connect_loopback(lb.port());
  char c = 'a', back = 0;
  ASSERT_TRUE(write_all(idle.get(), &c, 1) && read_exact(idle.get(), &back, 1));
  const auto t0 = Clock::now();
  EXPECT_EQ(lb.stop(SIGTERM, 5s), 0);
  const auto took = Clock::now() - t0;
  EXPECT_GE(took, 600ms);
  EXPECT_LT(took, 3s);
  EXPECT_EQ(read_to_eof(idle.get(), 2000), "");
  EXPECT_NE(lb.output().find("draining"), std::string::npos);
}

// Closes with RST instead of FIN.
void reset_close(Fd& fd) {
  linger l{1, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  fd.reset();
}

TEST(ProxyProcess, ResettingPeersCloseOnlyTheirOwnConnection) {
  // A backend that resets every connection after echoing its first bytes.
  Backend rude([](int fd, const std::atomic<bool>&) {
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) write_all(fd, buf, static_cast<size_t>(n));
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  });
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--backend",
                        echo.address(), "--workers", "2", "--health-interval", "0s"}));
  // A healthy long-lived connection that must survive everything below.
  Fd healthy = connect_loopback(lb.port(0));
  ASSERT_TRUE(write_all(healthy.get(), "ok", 2));
  char back[2];
  ASSERT_TRUE(read_exact(healthy.get(), back, 2));
  // Clients that reset mid-stream, some with data still in flight towards them.
  for (int i = 0; i < 20; ++i) {
    Fd c = connect_loopback(lb.port(0));
    ASSERT_TRUE(c);
    const std::string burst(100000, 'r');
    write_all(c.get(), burst.data(), burst.size());
    reset_close(c);
  }
  RinglbProcess lb2;
  ASSERT_TRUE(lb2.start({"--listen", "127.0.0.1:0", "--backend", rude.address(), "--workers", "1",
                         "--health-interval", "0s"}));
  for (int i = 0; i < 10; ++i) {
    Fd c = connect_loopback(lb2.port());
    ASSERT_TRUE(write_all(c.get(), "hello", 5));
    char got[5];
    EXPECT_TRUE(read_exact(c.get(), got, 5));
    EXPECT_LT(time_until_closed(c.get()), 2s) << "the backend's reset must close the client";
  }
  // The healthy connection still works; every reset connection is gone and counted.
  ASSERT_TRUE(write_all(healthy.get(), "ok", 2));
  ASSERT_TRUE(read_exact(healthy.get(), back, 2));
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_connections_active") == 1; }));
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_open_direct_slots") == 2; }));
  EXPECT_TRUE(eventually([&] {
    return lb.closed_total("reset") + lb.closed_total("client_eof") == 20;
  }));
  EXPECT_TRUE(eventually([&] { return lb2.metric("ringlb_connections_active") == 0; }));
  EXPECT_TRUE(eventually([&] { return lb2.metric("ringlb_open_direct_slots") == 0; }));
  EXPECT_GE(lb2.closed_total("reset"), 1);
  EXPECT_EQ(lb.metric("ringlb_buffer_waits_total"), 0);
  healthy.reset();  // otherwise the stop below would wait out the drain for it
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_connections_active") == 0; }));
  EXPECT_EQ(lb.stop(SIGTERM), 0);
  EXPECT_EQ(lb2.stop(SIGTERM), 0);
}

// HAProxy's `server s1 /run/app.sock`, nginx's `proxy_pass unix:...`: a local service on a Unix
// socket, health-checked and proxied like any other backend.
TEST(ProxyProcess, UnixSocketBackend) {
  TempDir dir;
  const std::string path = dir.path() + "/echo.sock";
  Fd listener(::socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener.get(), 64), 0);
  std::atomic<bool> stop{false};
  std::thread server([&] {
    // Echoes each connection to EOF, one at a time; health checks connect and close.
    while (!stop.load()) {
      if (!readable_within(listener.get(), 50)) continue;
      Fd c(accept(listener.get(), nullptr, nullptr));
      char buf[4096];
      ssize_t n;
      while ((n = read(c.get(), buf, sizeof(buf))) > 0) write_all(c.get(), buf, static_cast<size_t>(n));
    }
  });
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", "unix:" + path, "--workers", "1",
                        "--health-interval", "100ms"}))
      << lb.output();
  const std::string data(100000, 'u');
  Fd c = connect_loopback(lb.port());
  std::thread writer([&] {
    write_all(c.get(), data.data(), data.size());
    shutdown(c.get(), SHUT_WR);
  });
  EXPECT_EQ(read_to_eof(c.get(), 5000), data);
  writer.join();
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_health_checks_total") >= 3; }));
  EXPECT_EQ(lb.metric("ringlb_health_check_failures_total"), 0);
  EXPECT_EQ(lb.metric("ringlb_backend_up", {"backend=\"unix:" + path + "\""}), 1);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
  stop = true;
  server.join();
}

TEST(ProxyProcess, IPv6ListenerAndBackend) {
  // An IPv6 echo backend on [::1].
  Fd l6(::socket(AF_INET6, SOCK_STREAM, 0));
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  ASSERT_EQ(bind(l6.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(l6.get(), 16), 0);
  const uint16_t port6 = local_port(l6.get());
  std::thread server([&] {
    Fd c(accept(l6.get(), nullptr, nullptr));
    char buf[64];
    ssize_t n = recv(c.get(), buf, sizeof(buf), 0);
    if (n > 0) write_all(c.get(), buf, static_cast<size_t>(n));
  });
  RinglbProcess lb;
  // The server above takes one connection: no health check may use it up.
  ASSERT_TRUE(lb.start({"--listen", "[::1]:0", "--backend", "[::1]:" + std::to_string(port6),
                        "--workers", "1", "--health-interval", "0s"}))
      << lb.output();
  Fd c(::socket(AF_INET6, SOCK_STREAM, 0));
  sockaddr_in6 to = a;
  to.sin6_port = htons(lb.port());
  ASSERT_EQ(connect(c.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);
  ASSERT_TRUE(write_all(c.get(), "six", 3));
  set_recv_timeout(c.get(), 5000);
  char buf[3];
  ASSERT_TRUE(read_exact(c.get(), buf, 3));
  EXPECT_EQ(std::string(buf, 3), "six");
  server.join();
}

}  // namespace
}  // namespace ringlb::testing
