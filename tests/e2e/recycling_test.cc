// Backend ids are recycled: thousands of reloads, each naming a backend never seen before, fit in
// the registry's fixed capacity, and /metrics keeps only the current backends' series.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;

// An echo backend on every loopback address (0.0.0.0), so that 127.0.X.Y:PORT for any X, Y is a
// distinct backend name reaching it. One connection at a time: reads one message, echoes it.
class AnyAddressEcho {
 public:
  AnyAddressEcho() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    int one = 1;
    setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd_.get(), 128) != 0) {
      return;
    }
    port_ = local_port(fd_.get());
    thread_ = std::thread([this] {
      while (!stopping_.load()) {
        pollfd p{fd_.get(), POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        Fd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!c) continue;
        set_recv_timeout(c.get(), 2000);
        char buf[256];
        const ssize_t n = ::recv(c.get(), buf, sizeof(buf), 0);
        if (n > 0) write_all(c.get(), buf, static_cast<size_t>(n));
      }
    });
  }
  ~AnyAddressEcho() {
    stopping_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  Fd fd_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// A name of its own for reload i, all reaching the echo backend: 127.0.X.Y.
std::string changing_backend(int i, uint16_t port) {
  return "127.0." + std::to_string(1 + i / 200) + "." + std::to_string(1 + i % 200) + ":" + std::to_string(port);
}

void write_config(const std::string& path, const std::string& stable, const std::string& changing) {
  std::ofstream toml(path + ".new");
  toml << "workers = 2\nhealth-interval = \"0s\"\n\n[cluster.app]\nbackends = [\"" << stable << "\", \""
       << changing << "\"]\n\n[[listener]]\nname = \"front\"\naddress = \"127.0.0.1:0\"\ncluster = \"app\"\n";
  toml.close();
  std::rename((path + ".new").c_str(), path.c_str());  // never read half written
}

bool echoes(uint16_t port) {
  Fd fd = connect_loopback(port);
  if (!fd || !write_all(fd.get(), "ping", 4)) return false;
  return read_to_eof(fd.get(), 3000) == "ping";
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// The distinct backend labels of one metric's samples.
std::set<std::string> backend_labels(const std::string& scrape, const std::string& metric) {
  std::set<std::string> out;
  std::istringstream in(scrape);
  const std::regex label("backend=\"([^\"]*)\"");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(metric + "{", 0) != 0) continue;
    std::smatch m;
    if (std::regex_search(line, m, label)) out.insert(m[1]);
  }
  return out;
}

TEST(Recycling, TwoThousandReloadsEachWithANewBackendKeepWorking) {
  AnyAddressEcho echo;
  ASSERT_NE(echo.port(), 0);
  const std::string stable = "127.0.0.1:" + std::to_string(echo.port());
  const std::string toml = ::testing::TempDir() + "/recycling.toml";
  write_config(toml, stable, changing_backend(0, echo.port()));
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();
  ASSERT_TRUE(echoes(lb.port()));

  constexpr int kReloads = 2000;
  const auto started = std::chrono::steady_clock::now();
  std::string output;
  for (int i = 1; i <= kReloads; ++i) {
    write_config(toml, stable, changing_backend(i, echo.port()));
    kill(lb.pid(), SIGHUP);
    // Wait for this reload's line before the next signal (signals do not queue).
    const std::string line = "changed: app\n";
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (count_of(output, line) < static_cast<size_t>(i) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
      output = lb.output();
    }
    ASSERT_EQ(count_of(output, line), static_cast<size_t>(i))
        << "reload " << i << ":\n" << output.substr(output.size() > 4000 ? output.size() - 4000 : 0);
    // Now and then a client, which pins the snapshot of the moment while it is proxied.
    if (i % 100 == 0) {
      ASSERT_TRUE(echoes(lb.port())) << "after reload " << i;
    }
  }
  EXPECT_EQ(output.find("distinct backends"), std::string::npos) << "the registry filled up";
  EXPECT_LT(std::chrono::steady_clock::now() - started, 60s);

  for (int i = 0; i < 4; ++i) EXPECT_TRUE(echoes(lb.port())) << "after all reloads";
  // Only the current backends have series: the stable one (with its counts) and the last one.
  std::set<std::string> want{stable, changing_backend(kReloads, echo.port())};
  EXPECT_TRUE(eventually([&] { return backend_labels(lb.scrape(), "ringlb_backend_up") == want; }))
      << lb.scrape();
  for (const char* m : {"ringlb_backend_connections_active", "ringlb_backend_connect_attempts_total",
                        "ringlb_backend_sent_bytes_total", "ringlb_backend_connect_latency_seconds_bucket"}) {
    EXPECT_EQ(backend_labels(lb.scrape(), m), want) << m;
  }
  // The stable backend kept its id and its counts through every reload: over half of the clients.
  EXPECT_GE(lb.metric("ringlb_backend_connect_attempts_total", {"backend=\"" + stable + "\""}), 12);
  EXPECT_EQ(lb.stop(SIGTERM), 0) << lb.output().substr(0, 2000);
}

}  // namespace
}  // namespace ringlb::testing
