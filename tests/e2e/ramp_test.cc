// Slow start end to end: a backend that comes back gets a share of new connections that rises
// window by window to its weight's share.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <memory>
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

TEST(SlowStart, ShareOfABackendThatComesBackRisesToItsWeightOver10s) {
  Backend a(name_handler("a"));
  auto b = std::make_unique<Backend>(name_handler("b"));
  const uint16_t b_port = b->port();
  TempDir tmp;
  const std::string toml = tmp.path() + "/lb.toml";
  std::ofstream(toml) << "workers = 1\n[cluster.web]\nbalance = \"roundrobin\"\nslow-start = \"10s\"\n"
                      << "health-interval = \"100ms\"\nhealth-timeout = \"200ms\"\nrise = 1\nfall = 1\n"
                      << "backends = [\"" << a.address() << "\", \"" << b->address() << "\"]\n"
                      << "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n";
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", toml})) << lb.output();
  b.reset();  // b goes away: down after one failed check
  ASSERT_TRUE(eventually([&] { return lb.metric("ringlb_backend_up", {"backend=\"127.0.0.1:" + std::to_string(b_port) + "\""}) == 0; }));
  b = std::make_unique<Backend>(name_handler("b"), b_port);
  ASSERT_TRUE(eventually([&] { return lb.output().find("slow start over 10000ms") != std::string::npos; }))
      << lb.output();
  const auto t0 = Clock::now();  // within a tick of the ramp's start
  // Six 2 s windows of new connections, one every few ms: five while it ramps, one after.
  std::vector<int> to_b(6), total(6);
  while (Clock::now() - t0 < 12s) {
    const size_t w = static_cast<size_t>((Clock::now() - t0) / 2s);
    const std::string name = name_from(lb.port(), "127.0.0.1", 2000);
    if (w >= total.size() || name.empty()) continue;
    ++total[w];
    to_b[w] += name == "b";
    std::this_thread::sleep_for(3ms);
  }
  std::string shares;
  std::vector<double> share;
  for (size_t w = 0; w < total.size(); ++w) {
    share.push_back(total[w] == 0 ? 0 : static_cast<double>(to_b[w]) / total[w]);
    shares += std::to_string(share.back()) + " (" + std::to_string(total[w]) + ") ";
  }
  for (size_t w = 0; w < total.size(); ++w) ASSERT_GT(total[w], 100) << shares;
  for (size_t w = 1; w < 5; ++w) EXPECT_GT(share[w], share[w - 1]) << "window " << w << ": " << shares;
  EXPECT_LT(share[0], 0.2) << shares;
  EXPECT_GT(share[4], 0.4) << "its last ramping window, at 80-100% of its weight: " << shares;
  EXPECT_NEAR(share[5], 0.5, 0.03) << "its weight's share, once the ramp is over: " << shares;
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

}  // namespace
}  // namespace ringlb::testing
