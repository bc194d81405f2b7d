// Active health checks against real servers: nginx (http, and a send-proxy backend that needs
// the LOCAL header first), a backend that accepts and never answers, redis-server (send-expect
// PING/+PONG), openssl s_server (tls, https) and a plain server under a tls check; then the
// config errors, each with its message.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string ctl_backends(const std::string& sock) {
  return run_command({runfile("server/ringlb"), "ctl", sock, "backends"}).output;
}

// The cells of `backend`'s row in `table` (ctl backends: columns set apart by two spaces or more):
// CLUSTER BACKEND STATE WEIGHT ACTIVE ORIGIN CHECK LAST-FAILURE.
std::vector<std::string> backend_row(const std::string& table, const std::string& backend) {
  std::vector<std::string> out;
  const size_t at = table.find("  " + backend + "  ");
  if (at == std::string::npos) return out;
  const size_t start = table.rfind('\n', at) + 1;
  const std::string line = table.substr(start, table.find('\n', at) - start);
  size_t from = 0;
  while (from < line.size()) {
    size_t end = line.find("  ", from);
    if (end == std::string::npos) end = line.size();
    out.push_back(line.substr(from, end - from));
    from = line.find_first_not_of(' ', end);
  }
  return out;
}

double up(const RinglbProcess& lb, const std::string& backend) {
  return lb.metric("ringlb_backend_up", {"backend=\"" + backend + "\""});
}

double checks(const RinglbProcess& lb, const std::string& backend, const std::string& result) {
  return lb.metric("ringlb_backend_checks_total", {"backend=\"" + backend + "\"", "result=\"" + result + "\""});
}

// nginx answering `status` on /healthz at `port` (plain) and `proxied` (PROXY protocol).
void write_nginx(const std::string& dir, uint16_t port, uint16_t proxied, int status) {
  write_file(dir + "/nginx.conf",
             "daemon off; worker_processes 1;\npid " + dir + "/nginx.pid; error_log " + dir +
                 "/error.log;\nevents { worker_connections 64; }\nhttp { access_log off;\n"
                 "  server { listen 127.0.0.1:" + std::to_string(port) + "; listen 127.0.0.1:" +
                 std::to_string(proxied) + " proxy_protocol;\n    location /healthz { return " +
                 std::to_string(status) + " \"status " + std::to_string(status) + "\"; } } }\n");
}

// Reloads nginx and waits until its answer is `status`.
void reload_nginx(const std::string& dir, uint16_t port, int status) {
  RunResult r = run_command({"nginx", "-c", dir + "/nginx.conf", "-p", dir, "-e", dir + "/error.log", "-s", "reload"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(eventually([&] {
    Fd c = connect_loopback(port);
    if (!c) return false;
    write_all(c.get(), "GET /healthz HTTP/1.0\r\n\r\n", 25);
    return read_to_eof(c.get(), 1000).rfind("HTTP/1.1 " + std::to_string(status), 0) == 0;
  })) << "nginx did not reload";
}

TEST(Health, HttpCheckFollowsNginxFrom200To503AndBack) {
  TempDir tmp;
  const std::string& dir = tmp.path();
  const uint16_t port = quiet_port(), proxied = quiet_port();
  write_nginx(dir, port, proxied, 200);
  ChildProcess nginx({"nginx", "-c", dir + "/nginx.conf", "-p", dir, "-e", dir + "/error.log"});
  ASSERT_TRUE(eventually([&] { return static_cast<bool>(connect_loopback(port)); })) << "nginx did not start";
  const std::string plain = "127.0.0.1:" + std::to_string(port), pp = "127.0.0.1:" + std::to_string(proxied);
  const std::string sock = dir + "/ctl.sock";
  // interval 200 ms, fall 3, rise 2.
  write_file(dir + "/lb.toml", "workers = 1\ncontrol-socket = \"" + sock + "\"\n[cluster.web]\n"
             "check = \"http\"\ncheck-path = \"/healthz\"\nhealth-interval = \"200ms\"\nhealth-timeout = \"500ms\"\n"
             "fall = 3\nrise = 2\nbackends = [\"" + plain + "\", { address = \"" + pp + "\", send-proxy = \"v1\" }]\n"
             "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", dir + "/lb.toml"})) << lb.output();
  ASSERT_TRUE(eventually([&] { return checks(lb, plain, "ok") >= 2 && checks(lb, pp, "ok") >= 2; }))
      << lb.scrape();
  EXPECT_EQ(up(lb, plain), 1);
  EXPECT_EQ(up(lb, pp), 1) << "nginx's proxy_protocol listener took the LOCAL header first";
  EXPECT_EQ(checks(lb, pp, "bad_response"), 0);
  EXPECT_GT(lb.metric("ringlb_backend_check_duration_seconds_count", {"backend=\"" + plain + "\""}), 0);

  write_nginx(dir, port, proxied, 503);
  reload_nginx(dir, port, 503);
  auto t0 = Clock::now();
  ASSERT_TRUE(eventually([&] { return up(lb, plain) == 0; }, 5s));
  auto took = Clock::now() - t0;
  // Three failed checks 200 ms apart: at least 400 ms after the first, at most fall x interval
  // (plus one interval's phase and a scrape's slack).
  EXPECT_GE(took, 350ms);
  EXPECT_LE(took, 1500ms);
  EXPECT_TRUE(eventually([&] {
    return lb.output().find("backend web/" + plain + " down: HTTP 503 from GET /healthz") != std::string::npos;
  })) << lb.output();
  EXPECT_GE(checks(lb, plain, "bad_status"), 3);
  const std::string listing = ctl_backends(sock);
  EXPECT_EQ(backend_row(listing, plain),
            (std::vector<std::string>{"web", plain, "down", "1", "0", "file", "http",
                                      "bad_status: HTTP 503 from GET /healthz"}))
      << listing;

  const double ok_while_down = checks(lb, plain, "ok");
  write_nginx(dir, port, proxied, 200);
  reload_nginx(dir, port, 200);
  t0 = Clock::now();
  ASSERT_TRUE(eventually([&] { return up(lb, plain) == 1; }, 5s));
  took = Clock::now() - t0;
  // Up at the second pass in a row (seen within a poll of it; a third may land between the
  // two scrapes).
  const double passes = checks(lb, plain, "ok") - ok_while_down;
  EXPECT_GE(passes, 2);
  EXPECT_LE(passes, 3);
  EXPECT_LE(took, 1200ms);
  const std::string after = ctl_backends(sock);
  const std::vector<std::string> row = backend_row(after, plain);
  ASSERT_EQ(row.size(), 8u) << after;
  EXPECT_EQ(row[2], "up") << after;
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

TEST(Health, AcceptingButSilentBackendIsDownByTheTimeout) {
  Backend silent([](int, const std::atomic<bool>& stopping) {
    while (!stopping.load()) std::this_thread::sleep_for(10ms);
  });
  TempDir tmp;
  write_file(tmp.path() + "/lb.toml", "workers = 1\ncontrol-socket = \"" + tmp.path() + "/ctl.sock\"\n"
             "[cluster.web]\ncheck = \"http\"\nhealth-interval = \"100ms\"\nhealth-timeout = \"300ms\"\nfall = 2\n"
             "backends = [\"" + silent.address() + "\"]\n[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", tmp.path() + "/lb.toml"})) << lb.output();
  const auto t0 = Clock::now();
  ASSERT_TRUE(eventually([&] { return up(lb, silent.address()) == 0; }, 5s)) << lb.output();
  EXPECT_GE(Clock::now() - t0, 500ms) << "two checks, each given its 300 ms";
  EXPECT_GE(checks(lb, silent.address(), "timeout"), 2);
  EXPECT_EQ(checks(lb, silent.address(), "ok"), 0);
  EXPECT_TRUE(eventually([&] { return lb.output().find("down: no reply within 300ms") != std::string::npos; }))
      << lb.output();
  const std::string table = ctl_backends(tmp.path() + "/ctl.sock");
  const std::vector<std::string> row = backend_row(table, silent.address());
  ASSERT_EQ(row.size(), 8u) << table;
  EXPECT_EQ(row[6], "http") << table;
  EXPECT_EQ(row[7], "timeout: no reply within 300ms") << table;
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

TEST(Health, RedisPingPongGoesDownWhileBusyAndComesBack) {
  TempDir tmp;
  const uint16_t port = quiet_port();
  ChildProcess redis({"redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1", "--save", "",
                      "--appendonly", "no", "--dir", tmp.path(), "--enable-debug-command", "yes"});
  ASSERT_TRUE(eventually([&] { return static_cast<bool>(connect_loopback(port)); })) << "redis did not start";
  const std::string addr = "127.0.0.1:" + std::to_string(port);
  // A literal TOML string: the escapes are ringlb's (the same bytes as "PING\r\n").
  write_file(tmp.path() + "/lb.toml", "workers = 1\n[cluster.cache]\ncheck = \"send-expect\"\n"
             "check-send = 'PING\\r\\n'\ncheck-expect = \"+PONG\"\nhealth-interval = \"100ms\"\n"
             "health-timeout = \"300ms\"\nfall = 2\nrise = 2\nbackends = [\"" + addr + "\"]\n"
             "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"cache\"\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", tmp.path() + "/lb.toml"})) << lb.output();
  ASSERT_TRUE(eventually([&] { return checks(lb, addr, "ok") >= 2; })) << lb.output();
  EXPECT_EQ(up(lb, addr), 1);
  // DEBUG SLEEP blocks the server: PING gets no answer until it ends.
  Fd c = connect_loopback(port);
  ASSERT_TRUE(write_all(c.get(), "DEBUG SLEEP 2\r\n", 15));
  EXPECT_TRUE(eventually([&] { return up(lb, addr) == 0; }, 2s)) << lb.output();
  EXPECT_GE(checks(lb, addr, "timeout"), 2);
  EXPECT_TRUE(eventually([&] { return up(lb, addr) == 1; }, 5s)) << "back once the sleep is over";
  EXPECT_EQ(checks(lb, addr, "bad_response"), 0);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

// A self-signed ECDSA P-256 certificate for CN=backend.test: DIR/cert.pem and DIR/key.pem.
bool make_certificate(const std::string& dir) {
  return run_command({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", dir + "/key.pem", "-out", dir + "/cert.pem", "-days", "1", "-subj", "/CN=backend.test"})
             .exit_code == 0;
}

TEST(Health, TlsCheckPassesOnOpensslAndFailsOnAPlainServer) {
  TempDir tmp;
  const std::string& dir = tmp.path();
  ASSERT_TRUE(make_certificate(dir)) << "openssl req failed";
  const uint16_t port = quiet_port();
  // -www: a tiny HTTPS server (status page, HTTP/1.0 200), for the https check too.
  ChildProcess server({"openssl", "s_server", "-quiet", "-accept", "127.0.0.1:" + std::to_string(port), "-cert",
                       dir + "/cert.pem", "-key", dir + "/key.pem", "-www"});
  ASSERT_TRUE(eventually([&] { return static_cast<bool>(connect_loopback(port)); })) << "s_server did not start";
  Backend plain(echo_handler());
  const std::string tls = "127.0.0.1:" + std::to_string(port);
  write_file(dir + "/lb.toml", "workers = 1\nhealth-interval = \"200ms\"\nhealth-timeout = \"500ms\"\nfall = 1\n"
             "[cluster.tls]\ncheck = \"tls\"\ncheck-sni = \"backend.test\"\nbackends = [\"" + tls + "\", \"" +
             plain.address() + "\"]\n[cluster.https]\ncheck = \"https\"\ncheck-path = \"/\"\nbackends = [\"" + tls +
             "\"]\n[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"tls\"\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", dir + "/lb.toml"})) << lb.output();
  ASSERT_TRUE(eventually([&] {
    return checks(lb, tls, "ok") >= 4 && checks(lb, plain.address(), "tls_error") >= 1;
  })) << lb.scrape();
  EXPECT_EQ(lb.metric("ringlb_backend_up", {"cluster=\"tls\"", "backend=\"" + tls + "\""}), 1);
  EXPECT_EQ(lb.metric("ringlb_backend_up", {"cluster=\"https\"", "backend=\"" + tls + "\""}), 1)
      << "the HTTP check inside TLS passed";
  EXPECT_EQ(up(lb, plain.address()), 0);
  EXPECT_EQ(checks(lb, plain.address(), "ok"), 0);
  EXPECT_NE(lb.output().find("backend tls/" + plain.address() + " down: TLS "), std::string::npos) << lb.output();
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

// tls checks resume the backend's session (TLS 1.3 tickets): openssl s_server, which prints
// "Reused session-id" for each resumed handshake, sees a full handshake first, then resumed ones.
TEST(Health, TlsChecksResumeTheirSessionAtOpenssl) {
  TempDir tmp;
  const std::string& dir = tmp.path();
  ASSERT_TRUE(make_certificate(dir)) << "openssl req failed";
  const uint16_t port = quiet_port();
  // Its stdin must stay open (it stops at EOF there): a FIFO this test holds open.
  ASSERT_EQ(mkfifo((dir + "/stdin").c_str(), 0600), 0);
  Fd stdin_writer(open((dir + "/stdin").c_str(), O_RDWR));
  ChildProcess server({"sh", "-c", "exec openssl s_server -accept 127.0.0.1:" + std::to_string(port) + " -cert " +
                       dir + "/cert.pem -key " + dir + "/key.pem < " + dir + "/stdin > " + dir + "/s_server.log 2>&1"});
  ASSERT_TRUE(eventually([&] { return static_cast<bool>(connect_loopback(port)); })) << "s_server did not start";
  const std::string tls = "127.0.0.1:" + std::to_string(port);
  write_file(dir + "/lb.toml", "workers = 1\nhealth-interval = \"100ms\"\nhealth-timeout = \"500ms\"\n"
             "[cluster.tls]\ncheck = \"tls\"\nbackends = [\"" + tls + "\"]\n"
             "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"tls\"\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", dir + "/lb.toml"})) << lb.output();
  ASSERT_TRUE(eventually([&] { return checks(lb, tls, "ok") >= 6; })) << lb.scrape();
  EXPECT_EQ(lb.stop(SIGTERM), 0);
  std::ifstream in(dir + "/s_server.log");
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  int handshakes = 0, reused = 0;
  for (size_t at = 0; (at = log.find("CIPHER is", at)) != std::string::npos; ++at) ++handshakes;
  for (size_t at = 0; (at = log.find("Reused session-id", at)) != std::string::npos; ++at) ++reused;
  EXPECT_GE(handshakes, 6) << log;
  EXPECT_GE(reused, handshakes - 2) << "the checks after the first resume its session\n" << log;
  EXPECT_LT(reused, handshakes) << "the first check is a full handshake\n" << log;
}

// check-port: the check goes to another port than the clients' (HAProxy's `port`), and a
// refused connect is counted as refused.
TEST(Health, CheckPortOverridesTheBackendsPort) {
  Backend echo(echo_handler());
  const std::string refused = "127.0.0.1:" + std::to_string(refused_port());
  TempDir tmp;
  write_file(tmp.path() + "/lb.toml", "workers = 1\nhealth-interval = \"100ms\"\nfall = 1\nrise = 1\n[cluster.web]\n"
             "backends = [{ address = \"" + refused + "\", check-port = " + std::to_string(echo.port()) + " },\n"
             "  { address = \"" + echo.address() + "\", check-port = " + std::to_string(refused_port()) + " }]\n"
             "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", tmp.path() + "/lb.toml"})) << lb.output();
  ASSERT_TRUE(eventually([&] { return checks(lb, refused, "ok") >= 2 && checks(lb, echo.address(), "refused") >= 2; }))
      << lb.scrape();
  EXPECT_EQ(up(lb, refused), 1) << "checked on the echo backend's port";
  EXPECT_EQ(up(lb, echo.address()), 0) << "checked on a refused port";
  EXPECT_NE(lb.output().find("down: connect: Connection refused"), std::string::npos) << lb.output();
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

// Checks are spread over the interval: 16 backends checked every 400 ms are each checked at
// once at start-up, then each in its own part of the interval, not all in the same tick (which
// without the spread repeats the start-up burst every interval). The backends record when each
// check's connection arrives.
TEST(Health, ChecksAreSpreadOverTheInterval) {
  constexpr int kBackends = 16;
  std::vector<Fd> listeners;
  std::vector<pollfd> polls;
  std::string list;
  for (int i = 0; i < kBackends; ++i) {
    uint16_t port = 0;
    listeners.push_back(listen_loopback(&port));
    ASSERT_TRUE(listeners.back());
    polls.push_back({listeners.back().get(), POLLIN, 0});
    list += std::string(i ? ", " : "") + "\"127.0.0.1:" + std::to_string(port) + "\"";
  }
  TempDir tmp;
  write_file(tmp.path() + "/lb.toml", "workers = 1\nhealth-interval = \"400ms\"\n[cluster.web]\nbackends = [" +
             list + "]\n[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", tmp.path() + "/lb.toml"})) << lb.output();
  std::vector<double> arrivals;  // seconds since the first check
  Clock::time_point first{};
  const auto end = Clock::now() + 3s;
  while (Clock::now() < end) {
    if (poll(polls.data(), polls.size(), 50) <= 0) continue;
    const auto now = Clock::now();
    for (pollfd& p : polls) {
      if (!(p.revents & POLLIN)) continue;
      Fd c(accept(p.fd, nullptr, nullptr));
      if (!c) continue;
      if (arrivals.empty()) first = now;
      arrivals.push_back(std::chrono::duration<double>(now - first).count());
    }
  }
  // The start-up round is all at once; from the third interval on, each 25 ms (half a tick) holds
  // at most what two ticks would get from an even spread (2 each), far from all 16.
  std::vector<double> steady;
  for (double t : arrivals) if (t >= 0.8 && t < 2.8) steady.push_back(t);
  ASSERT_GE(steady.size(), 4u * kBackends) << "checks every 400 ms for 2 s";
  size_t most = 0;
  for (size_t i = 0, j = 0; i < steady.size(); ++i) {
    while (steady[i] - steady[j] >= 0.025) ++j;
    most = std::max(most, i - j + 1);
  }
  EXPECT_LE(most, 5u) << "checks started together: " << most << " of " << kBackends << " within 25 ms";
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

// Each bad value is refused with FILE:LINE: KEY and its message, exit 2, before anything runs.
TEST(Health, BadCheckConfigsAreRefusedWithTheirMessage) {
  TempDir tmp;
  const std::string head = "[cluster.web]\n";
  const std::string tail = "backends = [\"127.0.0.1:1\"]\n[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n";
  struct Case {
    std::string toml;
    std::string where;  // after the file name: ":LINE: KEY: "
    std::string why;
  };
  const std::vector<Case> cases = {
      {head + "check = \"icmp\"\n" + tail, ":2: cluster.web.check: ", "unknown check type 'icmp'"},
      {head + "check = \"http\"\ncheck-status = \"399-200\"\n" + tail, ":3: cluster.web.check-status: ",
       "bad status range '399-200'"},
      {head + "check = \"http\"\ncheck-status = \"200-700\"\n" + tail, ":3: cluster.web.check-status: ",
       "bad status range '200-700'"},
      {head + "check = \"send-expect\"\ncheck-expect = \"" + std::string(300, 'x') + "\"\n" + tail,
       ":3: cluster.web.check-expect: ", "expect string too long or empty: 300 bytes (1 to 256)"},
      {head + "check = \"send-expect\"\n" + tail, ":2: cluster.web.check: ",
       "a send-expect check needs check-expect"},
      {head + "check-send = 'PING\\q'\n" + tail, ":2: cluster.web.check-send: ", "unknown escape \\q"},
      {"[cluster.web]\nbackends = [{ address = \"127.0.0.1:1\", check = \"gopher\" }]\n"
       "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n",
       ":2: cluster.web.backends[0].check: ", "unknown check type 'gopher'"},
      {head + "slow-start = \"ten seconds\"\n" + tail, ":2: cluster.web.slow-start: ", "duration"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = tmp.path() + "/bad" + std::to_string(i) + ".toml";
    write_file(path, cases[i].toml);
    RunResult r = run_command({runfile("server/ringlb"), "check", "--config", path});
    EXPECT_EQ(r.exit_code, 2) << cases[i].toml << r.output;
    const size_t at = r.output.find(path + cases[i].where);
    ASSERT_NE(at, std::string::npos) << "case " << i << ":\n" << r.output;
    const std::string line = r.output.substr(at, r.output.find('\n', at) - at);
    EXPECT_NE(line.find(cases[i].why), std::string::npos) << "case " << i << ": " << line;
  }
}

}  // namespace
}  // namespace ringlb::testing
