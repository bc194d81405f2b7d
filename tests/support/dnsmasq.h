// A real DNS server for the length of a test: dnsmasq on 127.0.0.1 and a free UDP port, serving
// only a hosts file (A/AAAA with a TTL of 1 s) and --srv-host records, NXDOMAIN for any other
// name under .test. Records change at run time: the hosts file is rewritten and dnsmasq sent
// SIGHUP; SRV records are command-line options, so changing them restarts it on the same port.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace ringlb::testing {

class Dnsmasq {
 public:
  // `dir` holds its hosts file.
  explicit Dnsmasq(const std::string& dir);
  ~Dnsmasq();
  Dnsmasq(const Dnsmasq&) = delete;
  Dnsmasq& operator=(const Dnsmasq&) = delete;

  // Writes the hosts file ("127.0.0.2 app.test" lines) and starts dnsmasq with `srv` records
  // (--srv-host values: "_app._tcp.test,b1.test,9001,10,100"); false if it does not come up.
  bool start(const std::string& hosts, const std::vector<std::string>& srv = {});
  // New hosts file, re-read on SIGHUP.
  void set_hosts(const std::string& hosts);
  // New SRV records: a restart on the same port.
  bool restart(const std::vector<std::string>& srv);
  void pause();   // SIGSTOP: queries go unanswered (time out)
  void resume();  // SIGCONT
  void kill();    // gone: queries are refused (ICMP port unreachable)
  uint16_t port() const { return port_; }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  bool launch();

  std::string hosts_path_;
  std::vector<std::string> srv_;
  uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace ringlb::testing
