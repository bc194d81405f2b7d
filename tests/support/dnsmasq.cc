#include "tests/support/dnsmasq.h"

#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <fstream>

#include "tests/support/net.h"

namespace ringlb::testing {
namespace {

// Binds UDP 127.0.0.1:port (0: any); the port bound, or 0 if it is taken.
uint16_t bind_udp(uint16_t port) {
  Fd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = loopback(port);
  socklen_t len = sizeof(addr);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return 0;
  }
  return ntohs(addr.sin_port);
}

// Whether a DNS server answers on 127.0.0.1:port within 100 ms (a query for ready.test, A).
bool answers(uint16_t port) {
  Fd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  static const unsigned char kQuery[] = {0x42, 0x42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, 'r', 'e', 'a', 'd',
                                         'y', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};
  sockaddr_in addr = loopback(port);
  if (sendto(fd.get(), kQuery, sizeof(kQuery), 0, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) return false;
  if (!readable_within(fd.get(), 100)) return false;
  unsigned char reply[512];
  return recv(fd.get(), reply, sizeof(reply), MSG_DONTWAIT) >= 12 && reply[0] == 0x42 && reply[1] == 0x42;
}

}  // namespace

Dnsmasq::Dnsmasq(const std::string& dir) : hosts_path_(dir + "/hosts") {}

Dnsmasq::~Dnsmasq() { process_.reset(); }

void Dnsmasq::set_hosts(const std::string& hosts) {
  {
    std::ofstream out(hosts_path_ + ".new");
    out << hosts;
  }
  rename((hosts_path_ + ".new").c_str(), hosts_path_.c_str());  // never a half-written file
  if (process_) ::kill(process_->pid(), SIGHUP);
}

bool Dnsmasq::start(const std::string& hosts, const std::vector<std::string>& srv) {
  set_hosts(hosts);
  srv_ = srv;
  // A free port below the ephemeral range (32768 and up), so that no client socket (another
  // test's resolver) takes it between this check and dnsmasq's bind; another if one does.
  srand(static_cast<unsigned>(getpid() ^ time(nullptr)));
  for (int attempt = 0; attempt < 10; ++attempt) {
    port_ = bind_udp(static_cast<uint16_t>(20000 + rand() % 12000));
    if (port_ != 0 && launch()) return true;
  }
  return false;
}

bool Dnsmasq::restart(const std::vector<std::string>& srv) {
  process_.reset();  // SIGKILL and reaped: the port is free again
  srv_ = srv;
  return launch();
}

bool Dnsmasq::launch() {
  const passwd* me = getpwuid(getuid());
  std::vector<std::string> argv = {"dnsmasq", "--keep-in-foreground", "--port=" + std::to_string(port_),
                                   "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
                                   "--no-hosts", "--addn-hosts=" + hosts_path_, "--local-ttl=1",
                                   "--local=/test/", "--cache-size=0", "--conf-file=/dev/null", "--pid-file=",
                                   std::string("--user=") + (me != nullptr ? me->pw_name : "root")};
  for (const std::string& s : srv_) argv.push_back("--srv-host=" + s);
  process_ = std::make_unique<ChildProcess>(argv);
  if (!process_->started()) return false;
  // Up once it answers (a port merely taken could be someone else's).
  for (int i = 0; i < 50; ++i) {
    if (answers(port_)) return true;
    usleep(20'000);
  }
  process_.reset();
  return false;
}

void Dnsmasq::pause() {
  if (process_) ::kill(process_->pid(), SIGSTOP);
}

void Dnsmasq::resume() {
  if (process_) ::kill(process_->pid(), SIGCONT);
}

void Dnsmasq::kill() { process_.reset(); }

}  // namespace ringlb::testing
