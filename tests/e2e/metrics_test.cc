// /metrics as an operator sees it: valid for promtool, agreeing with the traffic sent, scraped by
// a real Prometheus server, covering every series the Grafana dashboard queries, and answered
// while idle connections hold the port.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(Metrics, PromtoolCleanAndCountersMatchTraffic) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "2",
                        "--health-interval", "0s"}));
  constexpr int kConns = 25;
  uint64_t sent = 0;
  for (int i = 0; i < kConns; ++i) {
    Fd fd = connect_loopback(lb.port());
    ASSERT_TRUE(fd);
    const std::string payload(1000 + i * 977, static_cast<char>('a' + i % 26));
    ASSERT_TRUE(write_all(fd.get(), payload.data(), payload.size()));
    shutdown(fd.get(), SHUT_WR);
    EXPECT_EQ(read_to_eof(fd.get(), 5000), payload);
    sent += payload.size();
  }
  std::string text;
  eventually([&] { return lb.metric("ringlb_connections_active") == 0; }, 2s);  // settled, then scraped
  text = lb.scrape();
  ASSERT_FALSE(text.empty());
  const std::string path = write_temp("metrics.txt", text);
  RunResult check = run_command({"/bin/sh", "-c", "promtool check metrics < " + path});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(check.output, "") << "promtool warnings:\n" << check.output;

  EXPECT_EQ(lb.metric("ringlb_connections_accepted_total"), kConns);
  EXPECT_EQ(lb.closed_total("client_eof"), kConns);
  EXPECT_EQ(lb.metric("ringlb_backend_sent_bytes_total"), static_cast<double>(sent));
  EXPECT_EQ(lb.metric("ringlb_backend_received_bytes_total"), static_cast<double>(sent));
  EXPECT_EQ(lb.metric("ringlb_backend_connect_attempts_total"), kConns);
  EXPECT_EQ(lb.metric("ringlb_backend_connect_latency_seconds_count"), kConns);
  EXPECT_EQ(lb.metric("ringlb_handoff_latency_seconds_count"), kConns);
  EXPECT_EQ(lb.metric("ringlb_cqe_latency_seconds_count", {"op=\"accept\""}), kConns);
  EXPECT_EQ(lb.metric("ringlb_cqe_latency_seconds_count", {"op=\"connect\""}), kConns);
  EXPECT_GE(lb.metric("ringlb_cqe_latency_seconds_count", {"op=\"recv\""}), 3 * kConns);
  EXPECT_EQ(lb.metric("ringlb_open_direct_slots"), 0);
  EXPECT_EQ(lb.metric("ringlb_build_info", {"version=\""}), 1);
  // Every histogram's +Inf bucket equals its count.
  EXPECT_EQ(lb.metric("ringlb_cqe_latency_seconds_bucket", {"op=\"recv\"", "le=\"+Inf\""}),
            lb.metric("ringlb_cqe_latency_seconds_count", {"op=\"recv\""}));
  // Labels stay bounded: no client address or port anywhere.
  EXPECT_EQ(text.find("127.0.0.1:" + std::to_string(lb.port())), std::string::npos);
}

TEST(Metrics, DashboardQueriesOnlyExistingSeries) {
  std::ifstream in(runfile("metrics/grafana-dashboard.json"));
  ASSERT_TRUE(in) << "dashboard missing";
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string dashboard = ss.str();
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address()}));
  const std::string text = lb.scrape();
  std::set<std::string> queried;
  const std::regex name_re("ringlb_[a-z_]+");
  for (auto it = std::sregex_iterator(dashboard.begin(), dashboard.end(), name_re);
       it != std::sregex_iterator(); ++it) {
    queried.insert(it->str());
  }
  EXPECT_GE(queried.size(), 15u);
  for (const std::string& name : queried) {
    if (name == "ringlb_overview") continue;  // the dashboard's uid
    EXPECT_NE(text.find("\n" + name), std::string::npos) << name << " is not exported";
  }
  // A cluster variable from a backend metric's cluster label, which the scrape has.
  const size_t var_at = dashboard.find(R"("name": "cluster")");
  ASSERT_NE(var_at, std::string::npos) << "no cluster template variable";
  const std::regex cluster_query(R"re("query": "label_values\((ringlb_backend_[a-z_]+)(\{[^}]*\})?, cluster\)")re");
  std::smatch var;
  const std::string after = dashboard.substr(var_at, 400);
  ASSERT_TRUE(std::regex_search(after, var, cluster_query)) << after;
  EXPECT_NE(text.find("\n" + var[1].str() + "{cluster=\""), std::string::npos) << var[1] << " has no cluster label";
  // Every query of a per-backend metric filters by it.
  const std::regex expr_re(R"re("expr": "([^\n]*)",?\n)re");
  int backend_queries = 0;
  for (auto it = std::sregex_iterator(dashboard.begin(), dashboard.end(), expr_re); it != std::sregex_iterator();
       ++it) {
    const std::string expr = (*it)[1];
    if (expr.find("ringlb_backend_") == std::string::npos) continue;
    ++backend_queries;
    EXPECT_NE(expr.find(R"(cluster=~\"$cluster\")"), std::string::npos) << expr;
  }
  EXPECT_GE(backend_queries, 6);
}

TEST(Metrics, RealPrometheusScrapesCqeLatencyQuantile) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--workers", "1"}));
  const uint16_t prom_port = quiet_port();
  const std::string dir = ::testing::TempDir() + "/prometheus";
  const std::string config = write_temp(
      "prometheus.yml",
      "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
      "scrape_configs:\n  - job_name: ringlb\n    static_configs:\n      - targets: ['127.0.0.1:" +
          std::to_string(lb.metrics_port()) + "']\n");
  ChildProcess prom({"prometheus", "--config.file=" + config, "--storage.tsdb.path=" + dir,
                     "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)});
  ASSERT_TRUE(prom.started());
  // Steady traffic for the scrapes to see: a short connection every 50 ms, for at most 20 s.
  std::atomic<bool> stop{false};
  std::thread load([&] {
    for (int i = 0; i < 400 && !stop.load(); ++i) {
      Fd fd = connect_loopback(lb.port());
      if (fd) {
        write_all(fd.get(), "ping", 4);
        shutdown(fd.get(), SHUT_WR);
        read_to_eof(fd.get(), 2000);
      }
      std::this_thread::sleep_for(50ms);
    }
  });
  const std::string query =
      "/api/v1/query?query=histogram_quantile(0.99,%20sum%20by%20(le,%20op)%20(rate(ringlb_cqe_latency_"
      "seconds_bucket%5B30s%5D)))";
  std::string answer;
  bool found = false;
  const std::regex accept_value("\"op\":\"accept\"\\},\"value\":\\[[0-9.]+,\"([0-9.e+-]+)\"\\]");
  for (int i = 0; i < 60 && !found; ++i) {
    std::this_thread::sleep_for(500ms);
    answer = http_get(prom_port, query);
    std::smatch m;
    if (std::regex_search(answer, m, accept_value)) found = std::stod(m[1]) > 0;
  }
  stop = true;
  load.join();
  EXPECT_TRUE(found) << "no p99 for op=\"accept\"; last answer: " << answer;
}

// Connections that send nothing, or half a request line, once held both of CivetWeb's two
// threads for its 30 s default request timeout: every scrape waited. Now there are threads to
// spare, and the request timeout closes such connections after 5 s.
TEST(Metrics, IdleConnectionsDoNotHoldUpAScrape) {
  Backend echo(echo_handler());
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", echo.address(), "--health-interval", "0s"}));
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Fd> idle;
  for (int i = 0; i < 6; ++i) {
    idle.push_back(connect_loopback(lb.metrics_port()));
    ASSERT_TRUE(idle.back());
    if (i >= 4) {
      ASSERT_TRUE(write_all(idle.back().get(), "GET /metr", 9));
    }
  }
  std::this_thread::sleep_for(300ms);  // each taken by a thread of the server by now
  const auto scrape_at = std::chrono::steady_clock::now();
  const std::string text = lb.scrape();
  EXPECT_LT(std::chrono::steady_clock::now() - scrape_at, 2s);
  EXPECT_NE(text.find("ringlb_connections_accepted_total"), std::string::npos) << text;
  // The request timeout ends each of them (a half request may get a 4xx first).
  for (size_t i = 0; i < idle.size(); ++i) {
    EXPECT_TRUE(readable_within(idle[i].get(), 8000)) << "connection " << i << " still open";
    read_to_eof(idle[i].get(), 1000);
  }
  const auto closed_after = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(closed_after, 4s);
  EXPECT_LT(closed_after, 8s);
}

}  // namespace
}  // namespace ringlb::testing
