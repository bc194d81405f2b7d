// The udp health check against a real DNS server: dnsmasq answers a real query (hex-escaped in
// the TOML file) and stays up; an unknown name's NXDOMAIN fails the expect; a closed port's ICMP
// port unreachable takes its backend down at once as refused, with its reason in the log, the
// metrics and `ringlb ctl backends`; dnsmasq gone and back takes its backend down and up. And
// `ringlb check` on UDP listeners: their errors with FILE:LINE: KEY, exit 2.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/dnsmasq.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string ctl_backends(const std::string& sock) {
  return run_command({runfile("server/ringlb"), "ctl", sock, "backends"}).output;
}

// The cells of the row of `backend` in `cluster` (ctl backends: columns set apart by two spaces
// or more): CLUSTER BACKEND STATE WEIGHT ACTIVE ORIGIN CHECK LAST-FAILURE.
std::vector<std::string> backend_row(const std::string& table, const std::string& cluster, const std::string& backend) {
  size_t start = 0;
  while (start < table.size()) {
    const size_t end = std::min(table.find('\n', start), table.size());
    const std::string line = table.substr(start, end - start);
    start = end + 1;
    if (line.rfind(cluster + "  ", 0) != 0 || line.find("  " + backend + "  ") == std::string::npos) continue;
    std::vector<std::string> out;
    size_t from = 0;
    while (from < line.size()) {
      size_t cut = line.find("  ", from);
      if (cut == std::string::npos) cut = line.size();
      out.push_back(line.substr(from, cut - from));
      from = line.find_first_not_of(' ', cut);
    }
    return out;
  }
  return {};
}

double metric(const RinglbProcess& lb, const std::string& name, const std::string& cluster, const std::string& backend,
              const std::string& extra = "") {
  std::vector<std::string> labels{"cluster=\"" + cluster + "\"", "backend=\"" + backend + "\""};
  if (!extra.empty()) labels.push_back(extra);
  return lb.metric(name, labels);
}

double up(const RinglbProcess& lb, const std::string& cluster, const std::string& backend) {
  return metric(lb, "ringlb_backend_up", cluster, backend);
}

double checks(const RinglbProcess& lb, const std::string& cluster, const std::string& backend, const std::string& result) {
  return metric(lb, "ringlb_backend_checks_total", cluster, backend, "result=\"" + result + "\"");
}

// A UDP port on 127.0.0.1 with nothing bound to it (the kernel answers ICMP port unreachable),
// below the ephemeral range so no client socket takes it meanwhile.
uint16_t closed_udp_port() {
  for (uint16_t port = quiet_port(); port != 0; port = quiet_port()) {
    Fd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr = loopback(port);
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) return port;  // free; closed again here
  }
  return 0;
}

// A DNS query (id 0x1234, A) for `labels` ("\\x05check\\x04test"), as a TOML literal string holds it.
std::string query(const std::string& labels) {
  return "'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00" + labels + "\\x00\\x00\\x01\\x00\\x01'";
}

TEST(UdpHealth, ARealDnsQueryKeepsDnsmasqUpAndIcmpTakesAClosedPortDown) {
  TempDir tmp;
  Dnsmasq dns(tmp.path());
  ASSERT_TRUE(dns.start("10.1.2.3 check.test\n")) << "dnsmasq did not start";
  const std::string server = dns.server();
  const std::string closed = "127.0.0.1:" + std::to_string(closed_udp_port());
  const std::string sock = tmp.path() + "/ctl.sock";
  // check.test answers NOERROR, authoritative (flags 0x8580); nope.test is NXDOMAIN (0x8183).
  write_file(tmp.path() + "/lb.toml",
             "workers = 1\ncontrol-socket = \"" + sock + "\"\nhealth-interval = \"100ms\"\nhealth-timeout = \"500ms\"\n"
             "fall = 2\nrise = 2\n"
             "[cluster.dns]\ncheck = \"udp\"\ncheck-send = " + query("\\x05check\\x04test") + "\n"
             "check-expect = '\\x12\\x34\\x85\\x80'\nbackends = [\"" + server + "\", \"" + closed + "\"]\n"
             "[cluster.nx]\ncheck = \"udp\"\ncheck-send = " + query("\\x04nope\\x04test") + "\n"
             "check-expect = '\\x12\\x34\\x85\\x80'\nbackends = [\"" + server + "\"]\n"
             "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"dns\"\n"
             "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"nx\"\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", tmp.path() + "/lb.toml"})) << lb.output();

  ASSERT_TRUE(eventually([&] { return checks(lb, "dns", server, "ok") >= 3; })) << lb.scrape();
  EXPECT_EQ(up(lb, "dns", server), 1);
  EXPECT_EQ(checks(lb, "dns", server, "bad_response"), 0);
  EXPECT_EQ(checks(lb, "dns", server, "timeout"), 0);

  // The closed port: refused by ICMP, each check at once (far below the 500 ms timeout).
  ASSERT_TRUE(eventually([&] { return up(lb, "dns", closed) == 0; })) << lb.output();
  EXPECT_GE(checks(lb, "dns", closed, "refused"), 2);
  EXPECT_EQ(checks(lb, "dns", closed, "timeout"), 0) << "ICMP, not silence";
  EXPECT_LT(lb.metric("ringlb_backend_check_duration_seconds_sum", {"backend=\"" + closed + "\""}) /
                lb.metric("ringlb_backend_check_duration_seconds_count", {"backend=\"" + closed + "\""}),
            0.1);
  EXPECT_TRUE(eventually([&] {
    return lb.output().find("backend dns/" + closed + " down: ICMP port unreachable (recv: Connection refused)") !=
           std::string::npos;
  })) << lb.output();

  // NXDOMAIN is an answer, but not the one expected.
  ASSERT_TRUE(eventually([&] { return up(lb, "nx", server) == 0; })) << lb.output();
  EXPECT_GE(checks(lb, "nx", server, "bad_response"), 2);

  const std::string table = ctl_backends(sock);
  EXPECT_EQ(backend_row(table, "dns", server), (std::vector<std::string>{"dns", server, "up", "1", "0", "file", "udp", "-"}))
      << table;
  EXPECT_EQ(backend_row(table, "dns", closed),
            (std::vector<std::string>{"dns", closed, "down", "1", "0", "file", "udp",
                                      "refused: ICMP port unreachable (recv: Connection refused)"}))
      << table;
  const std::vector<std::string> nx = backend_row(table, "nx", server);
  ASSERT_EQ(nx.size(), 8u) << table;
  // The reply as it came (ctl escapes quotes and backslashes): the id, then NXDOMAIN's flags.
  EXPECT_EQ(nx[7].rfind(R"(bad_response: expected \"\\x124\\x85\\x80\", got \"\\x124\\x81\\x83)", 0), 0u) << table;

  // dnsmasq gone: its port refuses too; back on the same port: up after `rise` passes.
  dns.kill();
  ASSERT_TRUE(eventually([&] { return up(lb, "dns", server) == 0; })) << lb.output();
  EXPECT_GE(checks(lb, "dns", server, "refused"), 2);
  ASSERT_TRUE(dns.restart({}));
  EXPECT_TRUE(eventually([&] { return up(lb, "dns", server) == 1; })) << lb.output();
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

TEST(UdpHealth, CheckReportsUdpListenerErrorsWithFileLineAndKey) {
  TempDir tmp;
  const std::string path = tmp.path() + "/udp.toml";
  write_file(path,
             "[cluster.dns]\nbackends = [\"127.0.0.1:5353\"]\n"
             "[[listener]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:53\"\ncluster = \"dns\"\naccept-proxy = true\n"
             "[[listener]]\naddress = \"127.0.0.1:80\"\ncluster = \"dns\"\nresponses = 1\n");
  const RunResult bad = run_command({runfile("server/ringlb"), "check", "--config", path});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find(path + ":7: listener[0].accept-proxy: the PROXY protocol header starts a TCP stream: "
                                   "not for a UDP listener"),
            std::string::npos)
      << bad.output;
  EXPECT_NE(bad.output.find(path + ":11: listener[1].responses: only for a UDP listener (protocol = \"udp\")"),
            std::string::npos)
      << bad.output;

  write_file(path, "[cluster.dns]\ncheck = \"udp\"\ncheck-send = '\\x00'\nbackends = [\"127.0.0.1:5353\"]\n"
                   "[[listener]]\nname = \"dns\"\nprotocol = \"udp\"\naddress = \"127.0.0.1:0\"\ncluster = \"dns\"\n");
  const RunResult good = run_command({runfile("server/ringlb"), "check", "--config", path});
  EXPECT_EQ(good.exit_code, 0) << good.output;
  EXPECT_NE(good.output.find(": ok (1 listener, 1 cluster, 1 backend)"), std::string::npos) << good.output;
  // Until the data path is in, serving one is refused, not opened as TCP.
  const RunResult serve = run_command({runfile("server/ringlb"), "--config", path, "--metrics-listen", "none"});
  EXPECT_EQ(serve.exit_code, 2) << serve.output;
  EXPECT_NE(serve.output.find("listener 'dns': protocol = \"udp\" is not served yet"), std::string::npos) << serve.output;
}

}  // namespace
}  // namespace ringlb::testing
