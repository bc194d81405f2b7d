// Balancing policies and health checking, through ringlb, with three real backends that answer
// with their name.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <thread>

#include "tests/support/backends.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;

// Answers its name, then holds the connection until the client closes it.
struct Trio {
  Backend a{name_handler("a")}, b{name_handler("b")}, c{name_handler("c")};
  std::vector<std::string> args(const std::string& wa = "", const std::string& wb = "",
                                const std::string& wc = "") const {
    return {"--backend", a.address() + wa, "--backend", b.address() + wb, "--backend",
            c.address() + wc};
  }
};

std::vector<std::string> join(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Opens a connection and reads the backend's name (first byte is enough: names are 1 letter).
std::string ask(uint16_t port, Fd* keep = nullptr, const char* from = nullptr) {
  Fd fd = from ? connect_loopback_from(from, port) : connect_loopback(port);
  if (!fd) return "connect failed";
  set_recv_timeout(fd.get(), 5000);
  char c = 0;
  if (!read_exact(fd.get(), &c, 1)) return "";
  if (keep) *keep = std::move(fd);
  return std::string(1, c);
}

TEST(Balancer, WeightedRoundRobinSpreadsByWeight) {
  Trio t;
  RinglbProcess lb;
  ASSERT_TRUE(lb.start(join({"--listen", "127.0.0.1:0", "--workers", "2"}, t.args(",weight=3"))));
  std::map<std::string, int> hits;
  for (int i = 0; i < 500; ++i) hits[ask(lb.port())]++;
  EXPECT_NEAR(hits["a"], 300, 6);
  EXPECT_NEAR(hits["b"], 100, 6);
  EXPECT_NEAR(hits["c"], 100, 6);
}

TEST(Balancer, LeastConnFillsTheEmptiestBackend) {
  Trio t;
  RinglbProcess lb;
  ASSERT_TRUE(lb.start(join({"--listen", "127.0.0.1:0", "--workers", "2", "--balance", "leastconn"}, t.args())));
  std::vector<std::pair<std::string, Fd>> held;
  std::map<std::string, int> hits;
  for (int i = 0; i < 30; ++i) {
    Fd fd;
    std::string name = ask(lb.port(), &fd);
    hits[name]++;
    held.emplace_back(name, std::move(fd));
  }
  EXPECT_EQ(hits["a"], 10);
  EXPECT_EQ(hits["b"], 10);
  EXPECT_EQ(hits["c"], 10);
  // Free a's connections: the next ten all go to a, the least loaded.
  for (auto& [name, fd] : held) {
    if (name == "a") fd.reset();
  }
  ASSERT_TRUE(eventually([&] {
    return lb.metric("ringlb_backend_connections_active", {"backend=\"" + t.a.address() + "\""}) == 0;
  }, 5s));
  for (int i = 0; i < 10; ++i) {
    Fd fd;
    EXPECT_EQ(ask(lb.port(), &fd), "a") << i;
    held.emplace_back("a", std::move(fd));
  }
}

TEST(Balancer, Random2KeepsLoadEven) {
  Trio t;
  RinglbProcess lb;
  ASSERT_TRUE(lb.start(join({"--listen", "127.0.0.1:0", "--workers", "2", "--balance", "random2"}, t.args())));
  std::vector<Fd> held;
  std::map<std::string, int> hits;
  for (int i = 0; i < 300; ++i) {
    Fd fd;
    hits[ask(lb.port(), &fd)]++;
    held.push_back(std::move(fd));
  }
  // Held connections: two choices by load keep every backend near a third (plain random would
  // wander by about +-15 here).
  for (const char* n : {"a", "b", "c"}) EXPECT_NEAR(hits[n], 100, 12) << n;
}

TEST(Balancer, MaglevIsStickyAndTwoProcessesAgree) {
  Trio t;
  const auto args = join({"--listen", "127.0.0.1:0", "--workers", "2", "--balance", "maglev"}, t.args());
  RinglbProcess lb1, lb2;
  ASSERT_TRUE(lb1.start(args));
  ASSERT_TRUE(lb2.start(args));
  std::map<std::string, int> spread;
  for (int host = 2; host < 42; ++host) {
    const std::string ip = "127.0.0." + std::to_string(host);
    const std::string first = ask(lb1.port(), nullptr, ip.c_str());
    ASSERT_TRUE(first == "a" || first == "b" || first == "c") << ip << ": " << first;
    for (int i = 0; i < 3; ++i) EXPECT_EQ(ask(lb1.port(), nullptr, ip.c_str()), first) << ip;
    EXPECT_EQ(ask(lb2.port(), nullptr, ip.c_str()), first) << ip << ": the two processes disagree";
    spread[first]++;
  }
  EXPECT_EQ(spread.size(), 3u) << "40 client addresses should reach all three backends";
}

// Behind another load balancer (accept-proxy), Maglev hashes the client the PROXY header names,
// not the proxy in front: one original client sticks to one backend whatever address it comes
// through, and different original clients still spread.
TEST(Balancer, MaglevBehindAcceptProxyHashesTheHeadersClient) {
  Trio t;
  RinglbProcess lb;
  ASSERT_TRUE(lb.start(join({"--listen", "127.0.0.1:0,accept-proxy", "--workers", "2", "--balance",
                             "maglev", "--health-interval", "0s"},
                            t.args())))
      << lb.output();
  const auto ask_as = [&](const std::string& client, const char* via) {
    Fd fd = connect_loopback_from(via, lb.port());
    const std::string header = "PROXY TCP4 " + client + " 198.51.100.1 40000 443\r\n";
    if (!fd || !write_all(fd.get(), header.data(), header.size())) return std::string("send failed");
    set_recv_timeout(fd.get(), 5000);
    char c = 0;
    return read_exact(fd.get(), &c, 1) ? std::string(1, c) : std::string();
  };
  std::map<std::string, int> spread;
  for (int host = 1; host <= 30; ++host) {
    const std::string client = "203.0.113." + std::to_string(host);
    const std::string first = ask_as(client, "127.0.0.2");
    ASSERT_TRUE(first == "a" || first == "b" || first == "c") << client << ": " << first;
    for (const char* via : {"127.0.0.3", "127.0.0.4", "127.0.0.5"}) {
      EXPECT_EQ(ask_as(client, via), first) << client << " via " << via;
    }
    spread[first]++;
  }
  EXPECT_EQ(spread.size(), 3u) << "30 original clients, all through one proxy address, should reach all three backends";
}

TEST(Balancer, HealthChecksTakeStoppedBackendOutAndBringItBack) {
  auto a = std::make_unique<Backend>(name_handler("a"));
  Backend b(name_handler("b"));
  const uint16_t a_port = a->port();
  const std::string a_label = "backend=\"" + a->address() + "\"";
  RinglbProcess lb;
  // interval 200ms, fall 2, rise 2: down within ~0.4s (+ one interval), up again within ~0.4s.
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--workers", "2", "--backend", a->address(),
                        "--backend", b.address(), "--health-interval", "200ms",
                        "--health-timeout", "150ms", "--health-fall", "2", "--health-rise", "2"}));
  std::map<std::string, int> hits;
  for (int i = 0; i < 20; ++i) hits[ask(lb.port())]++;
  EXPECT_EQ(hits["a"], 10);
  EXPECT_EQ(lb.metric("ringlb_backend_up", {a_label}), 1);

  a.reset();  // stopped mid-run: connects are refused from now on
  const auto stopped = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return lb.metric("ringlb_backend_up", {a_label}) == 0; }, 3s));
  const auto took_down = std::chrono::steady_clock::now() - stopped;
  EXPECT_LT(took_down, 2 * 200ms + 300ms) << "fall x interval plus one interval of slack";
  const double attempts_before = lb.metric("ringlb_backend_connect_attempts_total", {a_label});
  for (int i = 0; i < 20; ++i) EXPECT_EQ(ask(lb.port()), "b");
  EXPECT_EQ(lb.metric("ringlb_backend_connect_attempts_total", {a_label}), attempts_before)
      << "a down backend must get no new connections";

  Backend again(name_handler("a"), a_port);  // restarted on its port
  ASSERT_EQ(again.port(), a_port);
  const auto restarted = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return lb.metric("ringlb_backend_up", {a_label}) == 1; }, 3s));
  EXPECT_LT(std::chrono::steady_clock::now() - restarted, 2 * 200ms + 300ms);
  hits.clear();
  for (int i = 0; i < 20; ++i) hits[ask(lb.port())]++;
  EXPECT_EQ(hits["a"], 10) << "traffic returns once it is up";
}

TEST(Balancer, AllBackendsDownClosesClientsAtOnce) {
  auto a = std::make_unique<Backend>(name_handler("a"));
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", a->address(), "--health-interval",
                        "100ms", "--health-fall", "1"}));
  a.reset();
  ASSERT_TRUE(eventually([&] { return lb.metric("ringlb_backend_up") == 0; }, 3s));
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(ask(lb.port()), "");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 200ms);
  }
  EXPECT_EQ(lb.closed_total("no_backend"), 5);
}

// HAProxy's maxconn queue: clients finding every backend at its max-connections wait for a
// turn, first come first served, instead of being turned away.
TEST(Balancer, ClientsWaitForABackendAtMaxConnectionsInArrivalOrder) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address() + ",max-connections=1",
                        "--workers", "1", "--health-interval", "0s", "--queue-timeout", "10s"}))
      << lb.output();
  std::vector<Fd> clients;
  for (char name : {'a', 'b', 'c'}) {
    clients.push_back(connect_loopback(lb.port()));
    ASSERT_TRUE(write_all(clients.back().get(), &name, 1));
    set_recv_timeout(clients.back().get(), 5000);
    if (name == 'a') {
      char back = 0;
      ASSERT_TRUE(read_exact(clients[0].get(), &back, 1));  // connected: the backend is now full
    }
    // Apart, so the acceptor takes them in different batches: the queue's order is the
    // acceptor's clock, and clients accepted in one batch tie.
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(eventually([&] { return lb.metric("ringlb_queued_connections") == 2; }));
  EXPECT_FALSE(readable_within(clients[1].get(), 200)) << "b must wait while a holds the backend";
  for (size_t i = 0; i + 1 < clients.size(); ++i) {
    // The one being served leaves; the next in line gets its echo, the one after still waits.
    shutdown(clients[i].get(), SHUT_WR);
    EXPECT_EQ(read_to_eof(clients[i].get(), 5000), "");
    char back = 0;
    ASSERT_TRUE(read_exact(clients[i + 1].get(), &back, 1)) << "client " << i + 1;
    EXPECT_EQ(back, "abc"[i + 1]);
    if (i + 2 < clients.size()) {
      EXPECT_FALSE(readable_within(clients[i + 2].get(), 200)) << "client " << i + 2 << " overtook";
    }
  }
  EXPECT_EQ(lb.metric("ringlb_queued_connections"), 0);
  EXPECT_EQ(lb.closed_total("queue_timeout"), 0);
  EXPECT_EQ(lb.closed_total("no_backend"), 0);
}

TEST(Balancer, QueuedClientIsClosedAtQueueTimeoutOrAtOnceWithoutAQueue) {
  Backend echo(echo_handler());
  for (const bool queue : {true, false}) {
    RinglbProcess lb;
    ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend",
                          echo.address() + ",max-connections=1", "--workers", "1",
                          "--health-interval", "0s", "--queue-timeout", queue ? "500ms" : "0s"}))
        << lb.output();
    Fd holder = connect_loopback(lb.port());
    char c = 'h';
    ASSERT_TRUE(write_all(holder.get(), &c, 1));
    set_recv_timeout(holder.get(), 5000);
    ASSERT_TRUE(read_exact(holder.get(), &c, 1));
    Fd waiter = connect_loopback(lb.port());
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(read_to_eof(waiter.get(), 5000), "");
    const auto waited = std::chrono::steady_clock::now() - t0;
    if (queue) {
      EXPECT_GE(waited, 450ms);
      EXPECT_LT(waited, 2s);
      EXPECT_TRUE(eventually([&] { return lb.closed_total("queue_timeout") == 1; }));
    } else {
      EXPECT_LT(waited, 300ms);
      EXPECT_TRUE(eventually([&] { return lb.closed_total("no_backend") == 1; }));
    }
    // The one holding the backend is untouched.
    ASSERT_TRUE(write_all(holder.get(), &c, 1));
    EXPECT_TRUE(read_exact(holder.get(), &c, 1));
    EXPECT_EQ(lb.metric("ringlb_queued_connections"), 0);
  }
}

TEST(Balancer, BadPolicySettingsExitTwo) {
  for (const auto& [args, word] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--balance", "fastest"}, "fastest"},
           {{"--balance", "maglev", "--maglev-table-size", "65536"}, "65536"},
           {{"--hash-key", "mac"}, "mac"},
           {{"--health-rise", "0"}, "'0'"}}) {
    std::vector<std::string> argv{runfile("server/ringlb"), "--listen", "127.0.0.1:0", "--backend",
                                  "127.0.0.1:1"};
    argv.insert(argv.end(), args.begin(), args.end());
    RunResult r = run_command(argv);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(word), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace ringlb::testing
