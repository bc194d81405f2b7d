// ringlb's command line: bad input gets one clear line naming the value and exit code 2.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <sys/socket.h>

#include <fstream>
#include <thread>
#include <sstream>
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
      {{"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:80,weight=1001"}, "weight=1001"},
      {{"--listen", "127.0.0.1:0", "--backend", ok_backend, "--idle-timeout", "600h"}, "24 days"},
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
    EXPECT_EQ(r.output.rfind("ringlb: error: ", 0), 0u) << r.output;
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

std::string write_toml(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// One cluster, one listener on a fresh port: what this build serves from a file.
std::string one_cluster(const std::string& backend, const std::string& extra_top = "") {
  return extra_top + "workers = 1\nidle-timeout = \"30s\"\n\n[cluster.app]\nbackends = [\"" + backend +
         "\"]\n\n[[listener]]\nname = \"front\"\naddress = \"127.0.0.1:0\"\ncluster = \"app\"\n";
}

TEST(Cli, TomlFileProxiesAByteStream) {
  Backend echo(echo_handler());
  const std::string path = write_toml("proxy.toml", one_cluster(echo.address()));
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", path})) << lb.output();
  Fd fd = connect_loopback(lb.port());
  std::string sent;
  for (int i = 0; i < 64 * 1024; ++i) sent += static_cast<char>('a' + i % 26);
  std::thread writer([&] {
    write_all(fd.get(), sent.data(), sent.size());
    shutdown(fd.get(), SHUT_WR);
  });
  EXPECT_EQ(read_to_eof(fd.get(), 5000), sent);
  writer.join();
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output();
}

TEST(Cli, FlagsWithATomlFile) {
  Backend a(name_handler("from-file"));
  Backend b(name_handler("from-command-line"));
  // Top-level keys only: --listen and --backend supply the rest, as without a file.
  const std::string globals = write_toml("globals.toml", "workers = 1\nidle-timeout = \"30s\"\n");
  {
    RinglbProcess lb;
    ASSERT_TRUE(lb.start({"--config", globals, "--listen", "127.0.0.1:0", "--backend", b.address()}))
        << lb.output();
    Fd fd = connect_loopback(lb.port());
    EXPECT_EQ(read_to_eof(fd.get(), 5000), "from-command-line");
  }
  // A flag replaces the file's top-level key (here a bad one: the flag's value is what is refused).
  const std::string path = write_toml("flags.toml", one_cluster(a.address()));
  RunResult r = run_ringlb({"--config", path, "--workers", "0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("invalid value '0' for --workers"), std::string::npos) << r.output;
  {
    RinglbProcess lb;
    ASSERT_TRUE(lb.start({"--config", path, "--workers", "2"})) << lb.output();
    EXPECT_NE(lb.output().find("2 workers"), std::string::npos) << lb.output();
    Fd fd = connect_loopback(lb.port());
    EXPECT_EQ(read_to_eof(fd.get(), 5000), "from-file");
  }
  // A file with clusters and listeners of its own takes no --backend.
  r = run_ringlb({"--config", path, "--backend", b.address()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--backend cannot be combined with " + path), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("listening on"), std::string::npos) << r.output;
}

TEST(Cli, BrokenTomlFileExitsTwoNamingFileLineAndKey) {
  const std::string path = write_toml("broken.toml", one_cluster("127.0.0.1:1", "backlog = \"lots\"\n"));
  RunResult r = run_ringlb({"--config", path});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.output, "ringlb: error: " + path + ":1: backlog: invalid value \"lots\": expected a whole number from 1 to 65535\n");
  // The old INI form is refused with a pointer to TOML.
  const std::string ini = write_toml("old.ini", "listen = 127.0.0.1:0\nbackend = 127.0.0.1:1\n");
  r = run_ringlb({"--config", ini});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find(ini + ":1: toml syntax: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("the INI form is gone"), std::string::npos) << r.output;
}

TEST(Cli, CheckNotesNothingForSeveralClusters) {
  // Every cluster is served by this build: check has nothing to warn about.
  const std::string path = write_toml(
      "two.toml", one_cluster("127.0.0.1:1") +
                      "\n[cluster.other]\nbackends = [\"127.0.0.1:2\"]\n\n[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"other\"\n");
  RunResult check = run_ringlb({"check", "--config", path});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("ok (2 listeners, 2 clusters, 2 backends)"), std::string::npos) << check.output;
  EXPECT_EQ(check.output.find("note:"), std::string::npos) << check.output;
}

TEST(Cli, CheckValidatesAndStartsNothing) {
  // Both the listener's port and the metrics port are taken: check must not try to bind them.
  uint16_t port = 0, metrics = 0;
  Fd taken = listen_loopback(&port);
  Fd metrics_taken = listen_loopback(&metrics);
  const std::string path = write_toml(
      "check.toml", "metrics-listen = \"127.0.0.1:" + std::to_string(metrics) + "\"\n" +
                        "[cluster.app]\nbackends = [\"127.0.0.1:1\", { address = \"127.0.0.1:2\", weight = 0 }]\n" +
                        "[[listener]]\naddress = \"127.0.0.1:" + std::to_string(port) + "\"\ncluster = \"app\"\n");
  RunResult r = run_ringlb({"check", "--config", path});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, path + ": ok (1 listener, 1 cluster, 2 backends)\n");
  // The example, with its TLS files made (a CA, RSA and ECDSA server certificates, a client
  // certificate) where it names them: the paths under /etc/ringlb/ become a directory of ours.
  const std::string etc = ::testing::TempDir() + "/etc-ringlb";
  ASSERT_EQ(run_command({"sh", "-c",
                         "set -e; mkdir -p " + etc + "; cd " + etc + "; "
                         "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=ca -keyout ca.key -out ca.pem -days 30; "
                         "mk() { openssl req -newkey $2 -nodes -subj /CN=$1.example.com -keyout $1.key -out $1.csr $3; "
                         "  openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -out $1.crt; }; "
                         "mk web rsa:2048; mk web-ec ec '-pkeyopt ec_paramgen_curve:P-256'; "
                         "mk client ec '-pkeyopt ec_paramgen_curve:P-256'; "
                         "cp ca.pem clients.pem; cp ca.pem backend-ca.pem"})
                .exit_code,
            0)
      << "openssl could not make the example's files";
  std::string example_text;
  {
    std::ifstream in(runfile("examples/ringlb.toml"));
    std::stringstream all;
    all << in.rdbuf();
    example_text = all.str();
  }
  for (size_t at = example_text.find("/etc/ringlb/"); at != std::string::npos;
       at = example_text.find("/etc/ringlb/", at)) {
    example_text.replace(at, 12, etc + "/");
  }
  const std::string example_path = write_toml("example.toml", example_text);
  RunResult example = run_ringlb({"check", "--config", example_path});
  EXPECT_EQ(example.exit_code, 0) << example.output;
  EXPECT_NE(example.output.find(": ok (5 listeners, 4 clusters, 9 backends, 1 DNS name)\n"), std::string::npos)
      << example.output;
  // As shipped, naming files this machine does not have: refused, each file named.
  RunResult shipped = run_ringlb({"check", "--config", runfile("examples/ringlb.toml")});
  EXPECT_EQ(shipped.exit_code, 2) << shipped.output;
  EXPECT_NE(shipped.output.find("/etc/ringlb/web.crt"), std::string::npos) << shipped.output;
  RunResult flags = run_ringlb({"check", "--listen", "127.0.0.1:" + std::to_string(port), "--backend",
                                "127.0.0.1:1", "--backend", "127.0.0.1:2"});
  EXPECT_EQ(flags.exit_code, 0) << flags.output;
  EXPECT_EQ(flags.output, "command line: ok (1 listener, 1 cluster, 2 backends)\n");
  RunResult bad_flags = run_ringlb({"check", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--workers", "0"});
  EXPECT_EQ(bad_flags.exit_code, 2);
  EXPECT_NE(bad_flags.output.find("invalid value '0' for --workers"), std::string::npos) << bad_flags.output;
}

TEST(Cli, CheckReportsEveryErrorWithFileLineAndKey) {
  uint16_t port = refused_port();
  const std::string path = write_toml(
      "check-broken.toml",
      "workers = 0\n"                                                   // 1
      "[cluster.app]\n"                                                 // 2
      "backends = [{ address = \"127.0.0.1:1\", wieght = 2 }]\n"        // 3
      "[[listener]]\n"                                                  // 4
      "address = \"127.0.0.1:" + std::to_string(port) + "\"\n"          // 5
      "sni = [{ name = \"*.*.example.com\", cluster = \"app\" }]\n");   // 6
  RunResult r = run_ringlb({"check", "--config", path});
  EXPECT_EQ(r.exit_code, 2);
  const std::string e = "ringlb: error: ";
  EXPECT_EQ(r.output, e + path + ":1: workers: invalid value 0: expected a whole number from 1 to 256\n" +
                          e + path + ":3: cluster.app.backends[0].wieght: unknown key (did you mean 'weight'?)\n" +
                          e + path + ":6: listener[0].sni[0].name: '*.*.example.com' is not a server name: use a DNS "
                                 "name (a.example.com) or one leading wildcard label (*.example.com)\n");
  // Nothing listens where the file said.
  Fd probe = connect_loopback(port);
  EXPECT_FALSE(static_cast<bool>(probe));
}

// One rule for every duration: 0 means "off" where the setting times something that may be
// absent (max-connection-duration, health-interval, ...), and is refused elsewhere. An
// idle-timeout of 0 used to pass and then close every connection within ~10 ms.
TEST(Cli, CheckRefusesAZeroDurationThatCannotMeanOff) {
  const std::string path = write_toml(
      "zero.toml", "max-connection-duration = \"0s\"\nhealth-interval = \"0s\"\ndrain-timeout = \"0s\"\n"  // 1-3: off
                   "[cluster.app]\nbackends = [\"127.0.0.1:1\"]\nqueue-timeout = \"0s\"\nslow-start = \"0s\"\n"    // 4-7
                   "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"app\"\nidle-timeout = \"0s\"\n");          // 8-11
  RunResult r = run_ringlb({"check", "--config", path});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_EQ(r.output, "ringlb: error: " + path + ":11: listener[0].idle-timeout: invalid value \"0s\": must be above "
                      "zero (0 does not turn it off: give connections that may stay idle a long one, up to \"576h\")\n");
  RunResult flag = run_ringlb({"check", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--idle-timeout", "0s"});
  EXPECT_EQ(flag.exit_code, 2) << flag.output;
  EXPECT_NE(flag.output.find("invalid value '0s' for --idle-timeout: must be above zero"), std::string::npos)
      << flag.output;
}

}  // namespace
}  // namespace ringlb::testing
