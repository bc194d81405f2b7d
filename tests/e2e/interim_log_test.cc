// access-log-interval over real sockets: a connection held open across three intervals gets three
// interim records (event=update) with its bytes and duration so far, then its record at close
// (event=close), in logfmt and in JSON (read by Python's json module); a connection shorter than
// an interval gets only the one at close.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <regex>
#include <string>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> file_lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(f, line);) lines.push_back(line);
  return lines;
}

// The lines of `path` that hold `part`.
std::vector<std::string> lines_with(const std::string& path, const std::string& part) {
  std::vector<std::string> out;
  for (const std::string& line : file_lines(path)) {
    if (line.find(part) != std::string::npos) out.push_back(line);
  }
  return out;
}

// The lines in logfmt: key=value pairs (values as written, quotes included).
std::string field(const std::string& line, const std::string& key) {
  const std::string tag = " " + key + "=";
  const size_t at = line.find(tag);
  if (at == std::string::npos) return "(no " + key + ")";
  const size_t from = at + tag.size();
  return line.substr(from, line.find(' ', from) - from);
}

// Sends `bytes` bytes and waits for their echo.
void talk(int fd, size_t bytes) {
  const std::string sent(bytes, 'k');
  ASSERT_TRUE(write_all(fd, sent.data(), sent.size()));
  std::string got(bytes, '\0');
  ASSERT_TRUE(read_exact(fd, got.data(), got.size()));
  EXPECT_EQ(got, sent);
}

// The clients of both tests: one held across three 1 s intervals, talking in between (5, then 10,
// then 15 bytes: 5, 15 and 30 so far at the records); one that lasts less than an interval.
struct Clients {
  std::string held_port, brief_port;
};

// `updates(port)`: how many interim records the log has for the client on `port` now.
Clients run_clients(uint16_t port, const std::function<size_t(const std::string&)>& updates) {
  Clients c;
  Fd held = connect_loopback(port);
  c.held_port = std::to_string(local_port(held.get()));
  {
    Fd brief = connect_loopback(port);
    c.brief_port = std::to_string(local_port(brief.get()));
    talk(brief.get(), 3);
    shutdown(brief.get(), SHUT_WR);
    EXPECT_EQ(read_to_eof(brief.get(), 5000), "");
  }
  for (size_t round = 1; round <= 3; ++round) {
    talk(held.get(), 5 * round);
    EXPECT_TRUE(eventually([&] { return updates(c.held_port) >= round; }, 3s)) << "no interim record " << round;
  }
  shutdown(held.get(), SHUT_WR);
  EXPECT_EQ(read_to_eof(held.get(), 5000), "");
  return c;
}

// A record's duration is its interval's (1 s, 2 s, 3 s) and a little: the timer's 10 ms slots,
// the loop. Never before it.
void expect_duration_near(int64_t us, int64_t interval_s, const std::string& line) {
  EXPECT_GE(us, interval_s * 1'000'000) << line;
  EXPECT_LT(us, interval_s * 1'000'000 + 300'000) << line;
}

TEST(InterimLog, ThreeUpdatesThenTheCloseInLogfmt) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.path() + "/access.log";
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "1",
                        "--health-interval", "0s", "--access-log", path, "--access-log-interval", "1s"}))
      << lb.output();
  const auto updates = [&](const std::string& port) {
    size_t n = 0;
    for (const std::string& line : lines_with(path, " client=127.0.0.1:" + port + " ")) n += field(line, "event") == "update";
    return n;
  };
  const Clients c = run_clients(lb.port(), updates);
  ASSERT_TRUE(eventually([&] { return lines_with(path, " client=127.0.0.1:" + c.held_port + " ").size() == 4; }))
      << file_lines(path).size();
  const std::vector<std::string> held = lines_with(path, " client=127.0.0.1:" + c.held_port + " ");
  const uint64_t so_far[] = {5, 15, 30};
  for (int i = 0; i < 3; ++i) {
    const std::string& line = held[static_cast<size_t>(i)];
    EXPECT_EQ(field(line, "event"), "update") << line;
    EXPECT_EQ(field(line, "close"), "-") << line;
    EXPECT_EQ(field(line, "backend"), echo.address()) << line;
    EXPECT_EQ(field(line, "bytes_from_client"), std::to_string(so_far[i])) << line;
    EXPECT_EQ(field(line, "bytes_from_backend"), std::to_string(so_far[i])) << line;
    expect_duration_near(std::stoll(field(line, "duration_us")), i + 1, line);
  }
  EXPECT_EQ(field(held[3], "event"), "close") << held[3];
  EXPECT_EQ(field(held[3], "close"), "client_eof") << held[3];
  EXPECT_EQ(field(held[3], "bytes_from_client"), "30") << held[3];
  EXPECT_GE(std::stoll(field(held[3], "duration_us")), 3'000'000) << held[3];
  // The short one: its record at close only.
  const std::vector<std::string> brief = lines_with(path, " client=127.0.0.1:" + c.brief_port + " ");
  ASSERT_EQ(brief.size(), 1u);
  EXPECT_EQ(field(brief[0], "event"), "close") << brief[0];
  EXPECT_EQ(lb.metric("ringlb_access_log_lines_total"), 5);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

TEST(InterimLog, ThreeUpdatesThenTheCloseInJson) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.path() + "/access.json";
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "1",
                        "--health-interval", "0s", "--access-log", path, "--access-log-format", "json",
                        "--access-log-interval", "1s"}))
      << lb.output();
  const auto updates = [&](const std::string& port) {
    size_t n = 0;
    for (const std::string& line : lines_with(path, "\"client\":\"127.0.0.1:" + port + "\"")) {
      n += line.find(",\"event\":\"update\"}") != std::string::npos;
    }
    return n;
  };
  const Clients c = run_clients(lb.port(), updates);
  ASSERT_TRUE(eventually([&] { return file_lines(path).size() == 5; })) << file_lines(path).size();
  // Through a strict parser: per line, the client's port, event, close, bytes and duration.
  const RunResult parsed = run_command(
      {"python3", "-c",
       "import json, sys\n"
       "for line in open(sys.argv[1], encoding='utf-8'):\n"
       "    o = json.loads(line)\n"
       "    assert list(o)[-2:] == ['close', 'event'], list(o)\n"
       "    print(o['client'].split(':')[1], o['event'], o['close'], o['bytes_from_client'],\n"
       "          o['bytes_from_backend'], o['duration_us'])\n",
       path});
  ASSERT_EQ(parsed.exit_code, 0) << parsed.output;
  std::vector<std::string> held, brief;
  std::istringstream out(parsed.output);
  for (std::string line; std::getline(out, line);) {
    if (line.rfind(c.held_port + " ", 0) == 0) held.push_back(line);
    if (line.rfind(c.brief_port + " ", 0) == 0) brief.push_back(line);
  }
  ASSERT_EQ(held.size(), 4u) << parsed.output;
  const std::regex record("[0-9]+ (update|close) ([a-z_]+|None) ([0-9]+) ([0-9]+) ([0-9]+)");
  const char* so_far[] = {"5", "15", "30"};
  for (int i = 0; i < 3; ++i) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(held[static_cast<size_t>(i)], m, record)) << held[static_cast<size_t>(i)];
    EXPECT_EQ(m[1], "update");
    EXPECT_EQ(m[2], "None") << "no close reason while open";
    EXPECT_EQ(m[3], so_far[i]);
    EXPECT_EQ(m[4], so_far[i]);
    expect_duration_near(std::stoll(m[5]), i + 1, held[static_cast<size_t>(i)]);
  }
  std::smatch m;
  ASSERT_TRUE(std::regex_match(held[3], m, record)) << held[3];
  EXPECT_EQ(m[1], "close");
  EXPECT_EQ(m[2], "client_eof");
  EXPECT_EQ(m[3], "30");
  ASSERT_EQ(brief.size(), 1u) << parsed.output;
  EXPECT_NE(brief[0].find(" close client_eof 3 3 "), std::string::npos) << brief[0];
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

}  // namespace
}  // namespace ringlb::testing
