// ringlb's command line: bad input gets one clear line naming the value and exit code 2.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

struct BadCase {
  std::vector<std::string> args;
  std::string must_mention;
};

RunResult run_ringlb(std::vector<std::string> args) {
  args.insert(args.begin(), runfile("server/ringlb"));
  return run_command(args, std::chrono::seconds(10));
}

TEST(Cli, BadInputExitsTwoNamingTheValue) {
  const std::string ok_backend = "127.0.0.1:1";
  const std::vector<BadCase> cases = {
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--bogus"}, "--bogus"},
      {{"--listen", "300.1.2.3:80", "--backend", ok_backend}, "300.1.2.3:80"},
      {{"--listen", "127.0.0.1:70000", "--backend", ok_backend}, "70000"},
      {{"--listen", "127.0.0.1:http", "--backend", ok_backend}, "http"},
      {{"--listen", "::1:80", "--backend", ok_backend}, "::1:80"},
      {{"--listen", "127.0.0.1:0"}, "--backend"},
      {{"--backend", ok_backend}, "--listen"},
      {{"--listen", "127.0.0.1:0", "--backend", "10.0.0.1"}, "10.0.0.1"},
      {{"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:80,weight=0"}, "weight=0"},
      {{"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:80,colour=blue"}, "colour=blue"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--workers", "0"}, "'0'"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--workers", "two"}, "two"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--connect-timeout", "5"}, "'5'"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--idle-timeout", "3fortnights"}, "3fortnights"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--fin-timeout", "0ms"}, "--fin-timeout"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--max-connections", "-1"}, "-1"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--cpu-affinity", "0,4000"}, "'4000'"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--cpu-affinity", "first"}, "'first'"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--acceptor-scheduling", "fifo"}, "'fifo'"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--iowq-scheduling", "idle"}, "--iowq-scheduling"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--buffers", "1000"}, "1000"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--metrics-listen", "localhost"}, "localhost"},
      {{"--config", "/nonexistent/ringlb.ini"}, "/nonexistent/ringlb.ini"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--access-log", "/nonexistent/access.log"},
       "/nonexistent/access.log"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--access-log", ""}, "--access-log"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--access-log-format", "csv"},
       "invalid value 'csv' for --access-log-format: expected logfmt or json"},
      {{"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:80,send-proxy-v3"}, "send-proxy-v3"},
      {{"--listen", "127.0.0.1:0,send-proxy", "--backend", ok_backend}, "send-proxy"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--deny", "10.0.0.1/8"}, "10.0.0.1/8"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--allow", "intranet"}, "intranet"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--max-connection-duration", "1y"}, "'1y'"},
  };
  for (const BadCase& c : cases) {
    RunResult r = run_ringlb(c.args);
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    EXPECT_EQ(r.exit_code, 2) << joined << "\n" << r.output;
    EXPECT_NE(r.output.find(c.must_mention), std::string::npos)
        << joined << " should mention " << c.must_mention << "; said: " << r.output;
    EXPECT_EQ(r.output.find("listening on"), std::string::npos) << "started anyway: " << joined;
    // One line, starting with the program name.
    EXPECT_EQ(r.output.rfind("ringlb: ", 0), 0u) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
}

TEST(Cli, ListenAddressInUseExitsTwo) {
  uint16_t port = 0;
  Fd taken = listen_loopback(&port);
  RunResult r = run_ringlb({"--listen", "127.0.0.1:0", "--listen",
                            "127.0.0.1:" + std::to_string(port), "--backend", "127.0.0.1:1",
                            "--metrics-listen", "none"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("in use"), std::string::npos) << r.output;
}

TEST(Cli, MetricsPortInUseExitsTwo) {
  uint16_t port = 0;
  Fd taken = listen_loopback(&port);
  RunResult r = run_ringlb({"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1",
                            "--metrics-listen", "127.0.0.1:" + std::to_string(port)});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("metrics"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(std::to_string(port)), std::string::npos) << r.output;
}

TEST(Cli, HelpAndVersionExitZero) {
  RunResult help = run_ringlb({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("--backend"), std::string::npos);
  EXPECT_NE(help.output.find("--drain-timeout"), std::string::npos);
  RunResult version = run_ringlb({"--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.output.rfind("ringlb ", 0), 0u);
}

TEST(Cli, ConfigFileWithCommandLineWinning) {
  Backend a(name_handler("from-file"));
  Backend b(name_handler("from-command-line"));
  const std::string path = ::testing::TempDir() + "/ringlb.ini";
  {
    std::ofstream ini(path);
    ini << "listen = 127.0.0.1:0\n"
        << "backend = " << a.address() << "\n"
        << "workers = 1\n"
        << "idle-timeout = 30s\n";
  }
  {
    RinglbProcess lb;
    ASSERT_TRUE(lb.start({"--config", path})) << lb.output();
    Fd fd = connect_loopback(lb.port());
    EXPECT_EQ(read_to_eof(fd.get(), 5000), "from-file");
  }
  {
    RinglbProcess lb;
    ASSERT_TRUE(lb.start({"--config", path, "--backend", b.address()})) << lb.output();
    Fd fd = connect_loopback(lb.port());
    EXPECT_EQ(read_to_eof(fd.get(), 5000), "from-command-line");
  }
  {
    std::ofstream ini(path);
    ini << "listen = 127.0.0.1:0\nbackend = " << a.address() << "\nworkers = lots\n";
  }
  RunResult r = run_ringlb({"--config", path});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("lots"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace ringlb::testing
