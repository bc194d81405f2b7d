// The runtime API (`ringlb ctl PATH set-weight|drain|disable|enable|backends`) against a real
// daemon and real backends: each change reaches the workers at once and shows in the metrics;
// drain lets open streams finish; overrides survive a reload and a takeover, leave with their
// backend; bad commands get one line of error and the daemon serves on.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/net.h"
#include "tests/support/process.h"
#include "tests/support/streams.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;

RunResult ctl(const std::string& sock, std::vector<std::string> words) {
  std::vector<std::string> argv{runfile("server/ringlb"), "ctl", sock};
  argv.insert(argv.end(), words.begin(), words.end());
  return run_command(argv);
}

// The backend's one-letter name, read from a new connection ("" on failure).
std::string ask(uint16_t port) {
  Fd fd = connect_loopback(port);
  if (!fd) return "";
  set_recv_timeout(fd.get(), 5000);
  char c = 0;
  return read_exact(fd.get(), &c, 1) ? std::string(1, c) : "";
}

// The line of `table` (ctl backends) for `backend`.
std::string row(const std::string& table, const std::string& backend) {
  const size_t at = table.find(backend);
  if (at == std::string::npos) return "";
  const size_t start = table.rfind('\n', at) + 1;
  return table.substr(start, table.find('\n', at) - start);
}

// The cells of a table row (columns are set apart by two spaces or more).
std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < line.size()) {
    size_t end = line.find("  ", at);
    if (end == std::string::npos) end = line.size();
    out.push_back(line.substr(at, end - at));
    at = line.find_first_not_of(' ', end);
  }
  return out;
}

// The STATE and WEIGHT cells of `backend` in `table`: "drain|0 (configured 1)".
std::string state_weight(const std::string& table, const std::string& backend) {
  const std::vector<std::string> c = cells(row(table, backend));
  return c.size() < 4 ? "no row for " + backend : c[2] + "|" + c[3];
}

std::vector<std::string> label(const std::string& cluster, const std::string& backend) {
  return {"cluster=\"" + cluster + "\"", "backend=\"" + backend + "\""};
}

double admin_state(const RinglbProcess& lb, const std::string& backend, const std::string& state) {
  std::vector<std::string> l = label("default", backend);
  l.push_back("state=\"" + state + "\"");
  return lb.metric("ringlb_backend_admin_state", l);
}

TEST(RuntimeApi, DrainStopsNewConnectionsWhileOpenStreamsFinishIntact) {
  Backend a(name_then_echo_handler('a')), b(name_then_echo_handler('b'));
  const std::string sock = scratch_socket_path("drain.sock");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", a.address(), "--backend", b.address(),
                        "--workers", "2", "--control-socket", sock, "--health-interval", "100ms"}))
      << lb.output();
  std::vector<std::unique_ptr<LongStream>> streams;
  for (int i = 0; i < 4; ++i) streams.push_back(std::make_unique<LongStream>(lb.port(), 30));
  int on_a = 0;
  for (auto& s : streams) {
    ASSERT_TRUE(s->connected);
    on_a += s->served_by == 'a';
  }
  ASSERT_GT(on_a, 0) << "no stream reached a";

  RunResult r = ctl(sock, {"drain", "default", a.address()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "ok: default " + a.address() + ": weight 0 (configured 1), drain\n");
  EXPECT_NE(lb.output().find("control: drain default " + a.address() + ": weight 0 (configured 1), drain\n"),
            std::string::npos)
      << lb.output();
  // Every new client goes to b, on both workers, from the next one on.
  // (a's accept count would also count its health checks: ringlb's connect attempts do not.)
  const double a_attempts = lb.metric("ringlb_backend_connect_attempts_total", label("default", a.address()));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(ask(lb.port()), "b");
  EXPECT_EQ(lb.metric("ringlb_backend_connect_attempts_total", label("default", a.address())), a_attempts);
  // ctl backends and the metrics say so while a's streams are still open.
  r = ctl(sock, {"backends"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("CLUSTER", 0), 0u) << r.output;
  EXPECT_EQ(cells(row(r.output, a.address())),
            (std::vector<std::string>{"default", a.address(), "drain", "0 (configured 1)", std::to_string(on_a), "file",
                                      "tcp", "-"}))
      << r.output;
  EXPECT_EQ(state_weight(r.output, b.address()), "up|1") << r.output;
  EXPECT_EQ(admin_state(lb, a.address(), "drain"), 1);
  EXPECT_EQ(admin_state(lb, a.address(), "enabled"), 0);
  EXPECT_EQ(lb.metric("ringlb_backend_weight", label("default", a.address())), 0);
  EXPECT_EQ(lb.metric("ringlb_backend_weight", label("default", b.address())), 1);
  // Drained, still checked: a stopped backend goes down.
  for (auto& s : streams) {
    s->thread.join();
    EXPECT_TRUE(s->ok) << "a stream on " << s->served_by << " broke";
  }
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_backend_connections_active", label("default", a.address())) == 0; }));
  a.stop();
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_backend_up", label("default", a.address())) == 0; }));
  EXPECT_EQ(state_weight(ctl(sock, {"backends"}).output, a.address()), "drain (down)|0 (configured 1)");
}

TEST(RuntimeApi, SetWeightChangesTheSplitOfTheNextConnections) {
  Backend a(name_handler("a")), b(name_handler("b"));
  const std::string sock = scratch_socket_path("weight.sock");
  RinglbProcess lb;
  // One worker: one picker, so the round-robin sequence is exactly the smooth weighted one.
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", a.address(), "--backend", b.address(),
                        "--workers", "1", "--control-socket", sock, "--health-interval", "0s"}))
      << lb.output();
  for (int i = 0; i < 7; ++i) ask(lb.port());  // somewhere in the 1:1 cycle
  RunResult r = ctl(sock, {"set-weight", "default", a.address(), "3"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "ok: default " + a.address() + ": weight 3 (configured 1), enabled\n");
  std::string picks;
  for (int i = 0; i < 100; ++i) picks += ask(lb.port());
  // Smooth weighted round robin of 3:1 is "aaba" over and over: every 4 in a row hold one b.
  EXPECT_EQ(std::count(picks.begin(), picks.end(), 'a'), 75) << picks;
  for (size_t i = 0; i + 4 <= picks.size(); ++i) {
    EXPECT_EQ(std::count(picks.begin() + i, picks.begin() + i + 4, 'b'), 1) << "at " << i << ": " << picks;
  }
  EXPECT_EQ(lb.metric("ringlb_backend_weight", label("default", a.address())), 3);
  EXPECT_EQ(state_weight(ctl(sock, {"backends"}).output, a.address()), "up|3 (configured 1)");
  // reset: back to the configured weight, 1:1 again.
  r = ctl(sock, {"set-weight", "default", a.address(), "reset"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "ok: default " + a.address() + ": weight 1, enabled\n");
  picks.clear();
  for (int i = 0; i < 10; ++i) picks += ask(lb.port());
  EXPECT_EQ(std::count(picks.begin(), picks.end(), 'a'), 5) << picks;
  EXPECT_EQ(lb.metric("ringlb_backend_weight", label("default", a.address())), 1);
}

TEST(RuntimeApi, DisableStopsConnectionsAndChecksEnableBringsBothBack) {
  Backend a(name_handler("a")), b(name_handler("b"));
  const std::string sock = scratch_socket_path("disable.sock");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", a.address(), "--backend", b.address(),
                        "--workers", "2", "--control-socket", sock, "--health-interval", "100ms",
                        "--health-fall", "2"}))
      << lb.output();
  RunResult r = ctl(sock, {"disable", "default", a.address()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "ok: default " + a.address() + ": weight 0 (configured 1), maint\n");
  for (int i = 0; i < 10; ++i) EXPECT_EQ(ask(lb.port()), "b");
  EXPECT_EQ(admin_state(lb, a.address(), "maint"), 1);
  EXPECT_EQ(state_weight(ctl(sock, {"backends"}).output, a.address()), "maint|0 (configured 1)");
  // In maintenance it is not checked: gone meanwhile, it is not marked down.
  const uint16_t a_port = a.port();
  a.stop();
  std::this_thread::sleep_for(600ms);
  EXPECT_EQ(lb.metric("ringlb_backend_up", label("default", a.address())), 1);
  // enable: checked again (down now), and back in the rotation once it answers.
  r = ctl(sock, {"enable", "default", a.address()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "ok: default " + a.address() + ": weight 1, enabled\n");
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_backend_up", {"backend=\"127.0.0.1:" + std::to_string(a_port) + "\""}) == 0; }));
  Backend again(name_handler("a"), a_port);
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_backend_up", {"backend=\"127.0.0.1:" + std::to_string(a_port) + "\""}) == 1; }));
  std::map<std::string, int> hits;
  for (int i = 0; i < 20; ++i) ++hits[ask(lb.port())];
  EXPECT_GE(hits["a"], 5);
  EXPECT_EQ(admin_state(lb, "127.0.0.1:" + std::to_string(a_port), "enabled"), 1);
}

void write_config(const std::string& path, const std::vector<std::string>& backends) {
  std::ofstream toml(path);
  toml << "workers = 1\nhealth-interval = \"0s\"\n\n[cluster.web]\nbackends = [";
  for (size_t i = 0; i < backends.size(); ++i) toml << (i ? ", " : "") << "\"" << backends[i] << "\"";
  toml << "]\n\n[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n";
}

void reload(RinglbProcess& lb, int* reloads) {
  kill(lb.pid(), SIGHUP);
  ++*reloads;
  ASSERT_TRUE(eventually([&] {
    const std::string out = lb.output();
    int n = 0;
    for (size_t at = out.find("info: reloaded:"); at != std::string::npos; at = out.find("info: reloaded:", at + 1)) ++n;
    return n == *reloads;
  })) << lb.output();
}

TEST(RuntimeApi, OverridesSurviveAReloadAndLeaveWithTheirBackend) {
  Backend a(name_handler("a")), b(name_handler("b")), c(name_handler("c"));
  const std::string sock = scratch_socket_path("reload.sock");
  const std::string toml = ::testing::TempDir() + "/runtime.toml";
  write_config(toml, {a.address(), b.address(), c.address()});
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml, "--control-socket", sock})) << lb.output();
  ASSERT_EQ(ctl(sock, {"set-weight", "web", a.address(), "3"}).exit_code, 0);
  ASSERT_EQ(ctl(sock, {"disable", "web", b.address()}).exit_code, 0);
  ASSERT_EQ(ctl(sock, {"drain", "web", c.address()}).exit_code, 0);
  int reloads = 0;
  reload(lb, &reloads);  // the same file
  std::string table = ctl(sock, {"backends"}).output;
  EXPECT_EQ(state_weight(table, a.address()), "up|3 (configured 1)") << table;
  EXPECT_EQ(state_weight(table, b.address()), "maint|0 (configured 1)") << table;
  EXPECT_EQ(state_weight(table, c.address()), "drain|0 (configured 1)") << table;
  for (int i = 0; i < 6; ++i) EXPECT_EQ(ask(lb.port()), "a");
  EXPECT_EQ(ctl(sock, {"overrides"}).output, "set-weight web " + a.address() + " 3\ndisable web " + b.address() +
                                                 "\ndrain web " + c.address() + "\n");

  // b leaves the file and comes back: it comes back as configured. a's configured weight
  // changes: its runtime weight gives way (c's drain stays).
  write_config(toml, {a.address() + ",weight=2", c.address()});
  reload(lb, &reloads);
  EXPECT_NE(lb.output().find("runtime state of web/" + b.address() + " dropped: it left the cluster"),
            std::string::npos) << lb.output();
  EXPECT_NE(lb.output().find("runtime weight 3 of web/" + a.address() + " dropped: its configured weight changed from 1 to 2"),
            std::string::npos) << lb.output();
  write_config(toml, {a.address() + ",weight=2", b.address(), c.address()});
  reload(lb, &reloads);
  table = ctl(sock, {"backends"}).output;
  EXPECT_EQ(state_weight(table, a.address()), "up|2") << table;
  EXPECT_EQ(state_weight(table, b.address()), "up|1") << table;
  EXPECT_EQ(state_weight(table, c.address()), "drain|0 (configured 1)") << table;
  EXPECT_EQ(ctl(sock, {"overrides"}).output, "drain web " + c.address() + "\n");
  std::map<std::string, int> hits;
  for (int i = 0; i < 30; ++i) ++hits[ask(lb.port())];
  EXPECT_EQ(hits["a"], 20);
  EXPECT_EQ(hits["b"], 10);
  EXPECT_EQ(hits["c"], 0);
}

TEST(RuntimeApi, ATakeoverCarriesTheRuntimeStateOver) {
  Backend a(name_handler("a")), b(name_handler("b"));
  const std::string old_sock = scratch_socket_path("old.sock"), new_sock = scratch_socket_path("new.sock");
  RinglbProcess old_lb;
  ASSERT_TRUE(old_lb.start({"--listen", "127.0.0.1:0", "--backend", a.address(), "--backend", b.address(),
                            "--control-socket", old_sock, "--health-interval", "0s", "--drain-timeout", "1s"}))
      << old_lb.output();
  ASSERT_EQ(ctl(old_sock, {"drain", "default", a.address()}).exit_code, 0);
  ASSERT_EQ(ctl(old_sock, {"set-weight", "default", b.address(), "7"}).exit_code, 0);
  RinglbProcess new_lb;
  ASSERT_TRUE(new_lb.start({"--listen", "127.0.0.1:" + std::to_string(old_lb.port()), "--backend", a.address(),
                            "--backend", b.address(), "--control-socket", new_sock, "--health-interval", "0s",
                            "--takeover", old_sock}))
      << new_lb.output();
  EXPECT_NE(new_lb.output().find("runtime state carried over: default " + a.address() + ": weight 0 (configured 1), drain"),
            std::string::npos) << new_lb.output();
  const std::string table = ctl(new_sock, {"backends"}).output;
  EXPECT_EQ(state_weight(table, a.address()), "drain|0 (configured 1)") << table;
  EXPECT_EQ(state_weight(table, b.address()), "up|7 (configured 1)") << table;
  EXPECT_EQ(old_lb.stop(0, 8s), 0) << old_lb.output();
  for (int i = 0; i < 6; ++i) EXPECT_EQ(ask(new_lb.port()), "b");
}

// No state file: `ctl overrides` saved before a restart and replayed with `ctl PATH -` after
// it restores the runtime state, quoted names included (a unix: path with a space).
TEST(RuntimeApi, SavedOverridesReplayedAfterARestart) {
  Backend a(name_handler("a")), b(name_handler("b"));
  TempDir dir;
  const std::string sock = scratch_socket_path("replay.sock"), unix_backend = "unix:" + dir.path() + "/a b.sock";
  const std::vector<std::string> args = {"--listen", "127.0.0.1:0", "--backend", a.address(), "--backend",
                                         b.address(), "--backend", unix_backend, "--control-socket", sock,
                                         "--health-interval", "0s", "--workers", "1"};
  std::string saved;
  {
    RinglbProcess lb;
    ASSERT_TRUE(lb.start(args)) << lb.output();
    ASSERT_EQ(ctl(sock, {"disable", "default", unix_backend}).exit_code, 0);
    ASSERT_EQ(ctl(sock, {"set-weight", "default", a.address(), "2"}).exit_code, 0);
    const RunResult r = ctl(sock, {"overrides"});
    ASSERT_EQ(r.exit_code, 0);
    saved = r.output;
    EXPECT_EQ(saved, "set-weight default " + a.address() + " 2\ndisable default \"" + unix_backend + "\"\n");
    EXPECT_EQ(lb.stop(SIGTERM), 0);
  }
  const std::string file = dir.path() + "/state";
  std::ofstream(file) << saved << "\n";
  RinglbProcess lb;
  ASSERT_TRUE(lb.start(args)) << lb.output();
  EXPECT_EQ(ctl(sock, {"overrides"}).output, "");  // a restart: nothing kept
  const RunResult r = run_command({"/bin/sh", "-c", runfile("server/ringlb") + " ctl " + sock + " - <" + file});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(ctl(sock, {"overrides"}).output, saved);
  std::string picks;
  for (int i = 0; i < 30; ++i) picks += ask(lb.port());
  EXPECT_EQ(std::count(picks.begin(), picks.end(), 'a'), 20) << picks;
  EXPECT_EQ(std::count(picks.begin(), picks.end(), 'b'), 10) << picks;
  // A refused line among them: the others apply, the exit code says one failed.
  std::ofstream(file) << "drain default " << b.address() << "\ndrain default nope:1\n";
  const RunResult bad = run_command({"/bin/sh", "-c", runfile("server/ringlb") + " ctl " + sock + " - <" + file});
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("has no backend 'nope:1'"), std::string::npos) << bad.output;
  EXPECT_EQ(state_weight(ctl(sock, {"backends"}).output, b.address()), "drain|0 (configured 1)");
}

// Sends `line` on a raw control connection and reads the answer.
std::string raw(const std::string& sock, const std::string& line) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, sock.c_str(), sizeof(addr.sun_path) - 1);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return "connect failed";
  if (!write_all(fd.get(), line.data(), line.size())) return "write failed";
  return read_to_eof(fd.get(), 5000);
}

TEST(RuntimeApi, BadCommandsGetOneLineOfErrorAndTheDaemonServesOn) {
  Backend a(name_handler("a"));
  const std::string sock = scratch_socket_path("bad.sock");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", a.address(), "--control-socket", sock,
                        "--health-interval", "0s"}))
      << lb.output();
  const struct {
    std::vector<std::string> words;
    std::string error;
  } kCases[] = {
      {{"drain", "nope", a.address()}, "unknown cluster 'nope'"},
      {{"drain", "default", "127.0.0.1:1"}, "cluster 'default' has no backend '127.0.0.1:1'"},
      {{"set-weight", "default", a.address(), "1001"}, "weight '1001' must be 0 to 1000 or reset"},
      {{"set-weight", "default", a.address(), "heavy"}, "weight 'heavy' must be 0 to 1000 or reset"},
      {{"set-weight", "default", a.address()}, "set-weight takes 3 arguments, not 2: set-weight CLUSTER BACKEND N|reset"},
      {{"enable"}, "enable takes 2 arguments, not 0: enable CLUSTER BACKEND"},
      {{"frob"}, "unknown command 'frob' (listeners, connections, backends, overrides, set-weight, drain, disable, enable)"},
  };
  for (const auto& c : kCases) {
    const RunResult r = ctl(sock, c.words);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_EQ(r.output, "ringlb: error: ctl: " + c.error + "\n");
  }
  // Malformed lines straight on the socket: one line each.
  EXPECT_EQ(raw(sock, "drain default \"unterminated\n"), "error: unterminated quote at byte 15\n");
  EXPECT_EQ(raw(sock, "\n"), "error: empty command (listeners, connections, backends, overrides, set-weight, drain, disable, enable)\n");
  EXPECT_EQ(raw(sock, std::string("drain\x01 x y\n")), "error: control character in the command (byte 6)\n");
  EXPECT_EQ(raw(sock, std::string(2000, 'x')), "");  // no line end within 1 KiB: dropped
  // Nothing changed, and it serves.
  const RunResult none = ctl(sock, {"overrides"});
  EXPECT_EQ(none.exit_code, 0);
  EXPECT_EQ(none.output, "");
  EXPECT_EQ(ask(lb.port()), "a");
  EXPECT_EQ(lb.metric("ringlb_backend_weight", label("default", a.address())), 1);
  EXPECT_NE(lb.output().find("control: command refused: unterminated quote"), std::string::npos) << lb.output();
  // The usage, without a daemon.
  const RunResult usage = run_command({runfile("server/ringlb"), "ctl", sock});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_NE(usage.output.find("usage: ringlb ctl PATH COMMAND"), std::string::npos) << usage.output;
}

}  // namespace
}  // namespace ringlb::testing
