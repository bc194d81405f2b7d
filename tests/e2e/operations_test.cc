// Operations without downtime: reload on SIGHUP, diagnostics, the access log (an upgrade by
// listener takeover: takeover_test.cc).
#include <gtest/gtest.h>
#include <signal.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <regex>
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

// A TOML config file: `extra` top-level keys, one cluster of `backends`, one listener.
std::string write_config(const std::string& path, const std::vector<std::string>& backends,
                         const std::string& extra = "") {
  std::ofstream toml(path);
  toml << "workers = 2\ndrain-timeout = \"10s\"\n" << extra << "\n[cluster.default]\nbackends = [";
  for (const auto& b : backends) toml << "\n  \"" << b << "\",";
  toml << "\n]\n\n[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"default\"\n";
  return path;
}

TEST(Operations, ReloadAddsAndRemovesBackendWithoutFailures) {
  Backend a(name_then_echo_handler('a')), b(name_then_echo_handler('b')), c(name_then_echo_handler('c'));
  const std::string toml = write_config(::testing::TempDir() + "/reload.toml", {a.address(), b.address()});
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();
  std::vector<std::unique_ptr<LongStream>> streams;
  for (int i = 0; i < 4; ++i) streams.push_back(std::make_unique<LongStream>(lb.port(), 40));
  ClientLoop load([&] { return name_then_echo_once(lb.port()); }, 1, 2ms, 3000);
  std::this_thread::sleep_for(400ms);

  write_config(toml, {b.address(), c.address()});
  kill(lb.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return lb.output().find("reloaded: 2 backends") != std::string::npos; }, 5s))
      << lb.output();
  std::this_thread::sleep_for(100ms);  // connections already past their pick may still reach a
  const int a_after_reload = a.accepted();
  std::this_thread::sleep_for(1s);
  load.finish();

  EXPECT_EQ(load.failed(), 0) << "of " << load.done() + load.failed();
  EXPECT_GT(load.done(), 100);
  EXPECT_EQ(a.accepted(), a_after_reload) << "the removed backend got new connections";
  EXPECT_GT(c.accepted(), 10) << "the added backend got none";
  int on_a = 0;
  for (auto& s : streams) {
    if (s->thread.joinable()) s->thread.join();
    EXPECT_TRUE(s->ok) << "a stream served by " << s->served_by << " broke";
    on_a += s->served_by == 'a';
  }
  EXPECT_GT(on_a, 0) << "no long-lived stream was on the removed backend; the test proves less";
}

TEST(Operations, ReloadClosesIdleConnectionToRemovedBackendAtDrainDeadline) {
  Backend a(name_then_echo_handler('a')), b(name_then_echo_handler('b'));
  const std::string toml = write_config(::testing::TempDir() + "/deadline.toml", {a.address()});
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml, "--drain-timeout", "600ms"}));
  Fd stuck = connect_loopback(lb.port());
  char name = 0;
  set_recv_timeout(stuck.get(), 5000);
  ASSERT_TRUE(read_exact(stuck.get(), &name, 1));
  ASSERT_EQ(name, 'a');
  write_config(toml, {b.address()});
  kill(lb.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return lb.output().find("reloaded") != std::string::npos; }, 5s));
  const auto t0 = Clock::now();
  // Still usable until the deadline...
  ASSERT_TRUE(write_all(stuck.get(), "hi", 2));
  char back[2];
  ASSERT_TRUE(read_exact(stuck.get(), back, 2));
  // ...then closed by ringlb.
  EXPECT_EQ(read_to_eof(stuck.get(), 5000), "");
  const auto waited = Clock::now() - t0;
  EXPECT_GE(waited, 350ms);
  EXPECT_LT(waited, 2s);
  EXPECT_EQ(lb.closed_total("drain"), 1);
  Fd fresh = connect_loopback(lb.port());
  set_recv_timeout(fresh.get(), 5000);
  ASSERT_TRUE(read_exact(fresh.get(), &name, 1));
  EXPECT_EQ(name, 'b');
}

TEST(Operations, ReloadChangesTheDenyList) {
  Backend echo(echo_handler());
  const std::string toml = write_config(::testing::TempDir() + "/acl.toml", {echo.address()},
                                       "deny = [\"127.0.0.7\"]\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();
  const auto served = [&] {
    Fd c = connect_loopback_from("127.0.0.7", lb.port());
    write_all(c.get(), "x", 1);
    shutdown(c.get(), SHUT_WR);
    return read_to_eof(c.get(), 5000) == "x";
  };
  EXPECT_FALSE(served());
  write_config(toml, {echo.address()}, "deny = [\"127.0.0.8/32\"]\n");
  kill(lb.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return lb.output().find("reloaded") != std::string::npos; }));
  EXPECT_TRUE(served());
  EXPECT_EQ(lb.closed_total("denied"), 1);
}

TEST(Operations, InvalidConfigOnReloadKeepsServing) {
  Backend a(name_then_echo_handler('a'));
  const std::string toml = write_config(::testing::TempDir() + "/bad.toml", {a.address()});
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml}));
  write_config(toml, {"non_sense!:80"});
  kill(lb.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return lb.output().find("reload failed") != std::string::npos; }, 5s));
  // Where in the file, and what: the element's line (6) and its key.
  EXPECT_NE(lb.output().find("reload failed: " + toml + ":6: cluster.default.backends[0]: invalid backend "
                             "\"non_sense!:80\""),
            std::string::npos)
      << lb.output();
  EXPECT_NE(lb.output().find("keeping the running configuration"), std::string::npos);
  // Not TOML at all (the old INI form): the same.
  std::ofstream(toml) << "listen = 127.0.0.1:0\n";
  kill(lb.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return lb.output().find(toml + ":1: toml syntax") != std::string::npos; }, 5s))
      << lb.output();
  for (int i = 0; i < 5; ++i) {
    Fd fd = connect_loopback(lb.port());
    set_recv_timeout(fd.get(), 5000);
    char name = 0;
    ASSERT_TRUE(read_exact(fd.get(), &name, 1));
    EXPECT_EQ(name, 'a');
  }
}

TEST(Operations, DiagnosticsListLiveConnectionWithTcpInfo) {
  Backend a(name_then_echo_handler('a'));
  const std::string sock = scratch_socket_path("diag.sock");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", a.address(), "--workers", "2",
                        "--control-socket", sock}));
  Fd fd = connect_loopback(lb.port());
  char name = 0;
  set_recv_timeout(fd.get(), 5000);
  ASSERT_TRUE(read_exact(fd.get(), &name, 1));
  const uint16_t client_port = local_port(fd.get());
  const int fds_before = count_open_fds(lb.pid());
  const std::string fds_before_list = list_open_fds(lb.pid());
  RunResult r = run_command({runfile("server/ringlb"), "ctl", sock, "connections"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string client_line = "peer=127.0.0.1:" + std::to_string(client_port);
  EXPECT_NE(r.output.find(client_line), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("side=backend backend=" + a.address()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("peer=" + a.address()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rtt_us="), std::string::npos) << r.output;
  // Every regular fd made for the listing is closed again.
  EXPECT_EQ(count_open_fds(lb.pid()), fds_before)
      << "before: " << fds_before_list << "\nafter: " << list_open_fds(lb.pid());
  EXPECT_EQ(lb.metric("ringlb_slow_path_fd_installs_total", {"reason=\"diagnostics\""}), 2);
}

std::vector<std::string> file_lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(f, line);) lines.push_back(line);
  return lines;
}

// --access-log: a line per connection, as HAProxy's tcplog or nginx stream's access_log gives,
// and log rotation through SIGHUP.
TEST(Operations, AccessLogHasALinePerConnectionAndFollowsRotation) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.path() + "/access.log";
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "1",
                        "--health-interval", "0s", "--access-log", path}))
      << lb.output();
  const auto talk = [&](const char* source, size_t bytes) {
    Fd c = connect_loopback_from(source, lb.port());
    const std::string sent(bytes, 'q');
    EXPECT_TRUE(write_all(c.get(), sent.data(), sent.size()));
    shutdown(c.get(), SHUT_WR);
    EXPECT_EQ(read_to_eof(c.get(), 5000), sent);
    return std::to_string(local_port(c.get()));
  };
  const std::string port_a = talk("127.0.0.2", 5);
  const std::string port_b = talk("127.0.0.3", 70000);  // more than one buffer's worth
  ASSERT_TRUE(eventually([&] { return file_lines(path).size() == 2; })) << file_lines(path).size();
  const std::vector<std::string> lines = file_lines(path);
  const std::string listener = " listener=127.0.0.1:" + std::to_string(lb.port()) +
                               " listener_name=listener-1 cluster=default sni=-"
                               " backend=" + echo.address() + " worker=0 queue_us=0 connect_attempts=1 connect_us=";
  // Lines come in the order the connections closed: one after the other here.
  EXPECT_NE(lines[0].find("Z client=127.0.0.2:" + port_a + listener), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find(" bytes_from_client=5 bytes_from_backend=5 close=client_eof"), std::string::npos)
      << lines[0];
  EXPECT_NE(lines[1].find("Z client=127.0.0.3:" + port_b + listener), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find(" bytes_from_client=70000 bytes_from_backend=70000 close=client_eof"),
            std::string::npos)
      << lines[1];
  EXPECT_EQ(lb.metric("ringlb_access_log_lines_total"), 2);

  // logrotate: move the file away, SIGHUP; the next line goes to a new file at the same path.
  ASSERT_EQ(std::rename(path.c_str(), (path + ".1").c_str()), 0);
  kill(lb.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return lb.output().find("reloaded") != std::string::npos; }))
      << lb.output();
  const std::string port_c = talk("127.0.0.4", 1);
  ASSERT_TRUE(eventually([&] { return file_lines(path).size() == 1; }));
  EXPECT_NE(file_lines(path)[0].find("client=127.0.0.4:" + port_c), std::string::npos);
  EXPECT_EQ(file_lines(path + ".1").size(), 2u);
  EXPECT_EQ(lb.metric("ringlb_access_log_dropped_lines_total"), 0);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

TEST(Operations, AccessLogSaysWhenNoBackendAnswered) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.path() + "/access.log";
  const std::string refused = "127.0.0.1:" + std::to_string(refused_port());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", refused, "--workers", "1",
                        "--health-interval", "0s", "--connect-attempts", "1", "--access-log", path}))
      << lb.output();
  Fd c = connect_loopback(lb.port());
  EXPECT_EQ(read_to_eof(c.get(), 5000), "");
  // The line is written when ringlb stops, if not at its next tick.
  EXPECT_EQ(lb.stop(SIGTERM), 0);
  const std::vector<std::string> lines = file_lines(path);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find(" backend=" + refused + " worker=0 queue_us=0 connect_attempts=1 connect_us=- "),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[0].find(" bytes_from_client=0 bytes_from_backend=0 close=connect_failed"),
            std::string::npos)
      << lines[0];
}

// --access-log-format json: each line is one JSON object a strict parser (Python's json module)
// reads, with the logfmt line's fields as numbers, strings and nulls. The refused backend is a
// Unix socket path with a quote, a backslash and a tab in it, as a user may write one.
TEST(Operations, AccessLogInJson) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.path() + "/access.json";
  const std::string refused = "unix:" + dir.path() + "/no \"such\" \\ \tsocket";
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", refused, "--backend", echo.address(),
                        "--workers", "1", "--health-interval", "0s", "--connect-attempts", "1",
                        "--access-log", path, "--access-log-format", "json"}))
      << lb.output();
  // Round robin: one client each way, one after the other.
  std::vector<std::string> ports;
  int echoed = 0;
  for (int i = 0; i < 2; ++i) {
    Fd c = connect_loopback(lb.port());
    ASSERT_TRUE(write_all(c.get(), "hello", 5));
    shutdown(c.get(), SHUT_WR);
    echoed += read_to_eof(c.get(), 5000) == "hello";
    ports.push_back(std::to_string(local_port(c.get())));
  }
  EXPECT_EQ(echoed, 1);
  ASSERT_TRUE(eventually([&] { return file_lines(path).size() == 2; })) << file_lines(path).size();
  // One line per object, each field printed as Python read it (repr: strings quoted, None).
  const RunResult parsed = run_command(
      {"python3", "-c",
       "import json, sys\n"
       "for line in open(sys.argv[1], encoding='utf-8'):\n"
       "    o = json.loads(line)\n"
       "    assert type(o) is dict and line.endswith('}\\n'), line\n"
       "    print(' '.join('%s=%r' % kv for kv in o.items()))\n",
       path});
  ASSERT_EQ(parsed.exit_code, 0) << parsed.output << "\n" << file_lines(path)[0];
  std::vector<std::string> objects;
  for (size_t at = 0, nl; (nl = parsed.output.find('\n', at)) != std::string::npos; at = nl + 1) {
    objects.push_back(parsed.output.substr(at, nl - at));
  }
  ASSERT_EQ(objects.size(), 2u) << parsed.output;
  const std::string time_re = "time='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z' ";
  const std::string listener = "listener='127.0.0.1:" + std::to_string(lb.port()) +
                               "' listener_name='listener-1' cluster='default' sni=None ";
  std::string python_refused = refused;  // as Python's repr writes it
  for (size_t at = 0; (at = python_refused.find_first_of("\\\t", at)) != std::string::npos; at += 2) {
    python_refused.replace(at, 1, python_refused[at] == '\t' ? "\\t" : "\\\\");
  }
  int failed = 0, proxied = 0;
  for (const std::string& o : objects) {
    if (o.find("close='connect_failed'") != std::string::npos) {
      ++failed;
      EXPECT_TRUE(std::regex_match(
          o, std::regex(time_re + "client='127\\.0\\.0\\.1:[0-9]+' " + listener + ".*")))
          << o;
      EXPECT_NE(o.find(listener + "backend='" + python_refused + "' worker=0 queue_us=0 "
                       "connect_attempts=1 connect_us=None duration_us="),
                std::string::npos)
          << o << "\nexpected backend '" << python_refused << "'";
      EXPECT_NE(o.find(" bytes_from_client=0 bytes_from_backend=0 close='connect_failed'"),
                std::string::npos)
          << o;
    } else {
      ++proxied;
      EXPECT_TRUE(std::regex_match(
          o, std::regex(time_re + "client='127\\.0\\.0\\.1:[0-9]+' " + listener + "backend='" +
                        echo.address() +
                        "' worker=0 queue_us=0 connect_attempts=1 connect_us=[0-9]+ "
                        "duration_us=[0-9]+ bytes_from_client=5 bytes_from_backend=5 "
                        "close='client_eof' event='close'")))
          << o;
    }
    // Each client's own port.
    EXPECT_TRUE(o.find("client='127.0.0.1:" + ports[0] + "'") != std::string::npos ||
                o.find("client='127.0.0.1:" + ports[1] + "'") != std::string::npos)
        << o;
  }
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(proxied, 1);
  EXPECT_EQ(lb.metric("ringlb_access_log_lines_total"), 2);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

}  // namespace
}  // namespace ringlb::testing
