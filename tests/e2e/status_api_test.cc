// The status page's JSON API against a running ringlb: every field docs/status-api.md names is
// there with its type (and nothing undocumented is), the values agree with the traffic sent, the
// health checks and the control socket, the connections list is paged and capped, and the
// listener serves only its known paths, with GET and HEAD.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/http.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

// The documented fields of a section of docs/status-api.md ("## `/api/v1/status`"): path -> type.
std::map<std::string, std::string> documented_fields(const std::string& section) {
  std::ifstream in(runfile("docs/status-api.md"));
  std::map<std::string, std::string> fields;
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) inside = line == "## `" + section + "`";
    if (!inside || line.rfind("| `", 0) != 0) continue;
    std::vector<std::string> cells;
    std::string cell;
    for (size_t i = 1; i < line.size(); ++i) {
      if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '|') {
        cell += '|';
        ++i;
      } else if (line[i] == '|') {
        cells.push_back(cell);
        cell.clear();
      } else {
        cell += line[i];
      }
    }
    if (cells.size() < 2) continue;
    auto trim = [](std::string s) {
      s.erase(0, s.find_first_not_of(" `"));
      s.erase(s.find_last_not_of(" `") + 1);
      return s;
    };
    fields[trim(cells[0])] = trim(cells[1]);
  }
  return fields;
}

bool has_type(const Json& v, const std::string& type) {
  if (type.size() > 5 && type.substr(type.size() - 5) == "|null" && v.is_null()) return true;
  const std::string base = type.substr(0, type.find('|'));
  if (base == "integer") return v.is_number_integer();
  if (base == "number") return v.is_number();
  if (base == "string") return v.is_string();
  if (base == "boolean") return v.is_boolean();
  if (base == "array") return v.is_array();
  if (base == "object") return v.is_object();
  return false;
}

// Checks `path` ("clusters[].backends[].check.type") in `node`, every element of every array on
// the way; *seen counts the values checked.
void check_path(const Json& node, const std::vector<std::string>& segments, size_t i, const std::string& path,
                const std::string& type, int* seen) {
  if (i == segments.size()) {
    ++*seen;
    EXPECT_TRUE(has_type(node, type)) << path << " should be " << type << ", is " << node.dump();
    return;
  }
  if (node.is_null()) return;  // an object|null parent that is null: nothing below it to check
  ASSERT_TRUE(node.is_object()) << path << ": " << node.dump().substr(0, 200);
  std::string key = segments[i];
  const bool each = key.size() > 2 && key.substr(key.size() - 2) == "[]";
  if (each) key.resize(key.size() - 2);
  ASSERT_TRUE(node.contains(key)) << "documented field " << path << " is missing (at " << key << ")";
  if (!each) return check_path(node[key], segments, i + 1, path, type, seen);
  ASSERT_TRUE(node[key].is_array()) << path;
  for (const Json& element : node[key]) check_path(element, segments, i + 1, path, type, seen);
}

void check_documented(const Json& doc, const std::map<std::string, std::string>& fields) {
  for (const auto& [path, type] : fields) {
    std::vector<std::string> segments;
    std::stringstream in(path);
    for (std::string s; std::getline(in, s, '.');) segments.push_back(s);
    int seen = 0;
    check_path(doc, segments, 0, path, type, &seen);
    EXPECT_GT(seen, 0) << "documented field " << path << " was never found with a value";
  }
}

// Every field path of `node` (arrays as "[]"), for the check that each one is documented.
void collect_paths(const Json& node, const std::string& prefix, std::set<std::string>* out) {
  if (!node.is_object()) return;
  for (const auto& [key, value] : node.items()) {
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    out->insert(path);
    if (value.is_object()) collect_paths(value, path, out);
    if (value.is_array()) {
      for (const Json& e : value) collect_paths(e, path + "[]", out);
    }
  }
}

const Json* find_named(const Json& list, const std::string& name) {
  for (const Json& e : list) {
    if (e.value("name", "") == name) return &e;
  }
  return nullptr;
}

std::string config(const std::vector<std::string>& web, const std::vector<std::string>& api, const std::string& sock) {
  std::string text = "workers = 2\ncontrol-socket = \"" + sock + "\"\nhealth-interval = \"100ms\"\n" +
                     "health-timeout = \"100ms\"\nhealth-fall = 1\nhealth-rise = 1\n\n[cluster.web]\nbackends = [";
  for (size_t i = 0; i < web.size(); ++i) text += (i ? ", \"" : "\"") + web[i] + "\"";
  text += "]\n\n[cluster.api]\nbalance = \"leastconn\"\nbackends = [";
  for (size_t i = 0; i < api.size(); ++i) text += (i ? ", \"" : "\"") + api[i] + "\"";
  return text + "]\n\n[[listener]]\nname = \"front\"\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n\n" +
         "[[listener]]\nname = \"api\"\naddress = \"127.0.0.1:0\"\ncluster = \"api\"\n";
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// An echo round trip of `n` bytes through `port`.
bool echo_through(uint16_t port, size_t n) {
  Fd fd = connect_loopback(port);
  if (!fd) return false;
  set_recv_timeout(fd.get(), 5000);
  const std::string out(n, 'x');
  std::string back(n, '\0');
  if (!write_all(fd.get(), out.data(), n) || !read_exact(fd.get(), back.data(), n)) return false;
  shutdown(fd.get(), SHUT_WR);
  return back == out;
}

class StatusApi : public ::testing::Test {
 protected:
  void start(const std::vector<std::string>& web, const std::vector<std::string>& api) {
    sock_ = scratch_socket_path("status.sock");
    // A sample every 500 ms (10 ticks of 50 ms): the history fills in seconds.
    env_ = std::make_unique<ScopedEnv>(std::vector<std::pair<std::string, std::string>>{{"RINGLB_TEST_STATUS_TICK_MS", "50"}});
    ASSERT_TRUE(lb_.start({"--config", write_temp("status.toml", config(web, api, sock_))})) << lb_.output();
  }
  Json status(const std::string& query = "") {
    int code = 0;
    Json j = get_json(lb_.metrics_port(), "/api/v1/status" + query, &code);
    EXPECT_EQ(code, 200);
    return j;
  }

  std::string sock_;
  std::unique_ptr<ScopedEnv> env_;
  RinglbProcess lb_;
};

TEST_F(StatusApi, EveryDocumentedFieldIsThereWithItsTypeAndSaneValues) {
  Backend a(echo_handler()), b(echo_handler()), c(echo_handler());
  const std::string dead = "127.0.0.1:" + std::to_string(refused_port());
  start({a.address(), b.address()}, {c.address(), dead});
  // Traffic after the first sample, so that the series saw it come (a series starts at its
  // first reading).
  ASSERT_TRUE(eventually([&] { return status("?history=1")["history"]["samples"] >= 1; }, 10s));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(echo_through(lb_.port(0), 1000));
  ASSERT_TRUE(echo_through(lb_.port(1), 500));
  Fd held = connect_loopback(lb_.port(0));  // one live connection on "front"
  ASSERT_TRUE(held);
  ASSERT_TRUE(write_all(held.get(), "hi", 2));
  char back[2];
  set_recv_timeout(held.get(), 5000);
  ASSERT_TRUE(read_exact(held.get(), back, 2));
  kill(lb_.pid(), SIGHUP);  // a reload of the same file: counted

  Json doc;
  ASSERT_TRUE(eventually([&] {
    doc = status();
    return doc.is_object() && doc["history"]["samples"].get<int>() >= 4 && doc["process"]["reloads"] == 1;
  }, 15s)) << doc.dump(1) << lb_.output();

  const std::map<std::string, std::string> fields = documented_fields("/api/v1/status");
  ASSERT_GT(fields.size(), 60u) << "docs/status-api.md's field table was not found";
  check_documented(doc, fields);
  std::set<std::string> served;
  collect_paths(doc, "", &served);
  for (const std::string& path : served) EXPECT_TRUE(fields.count(path)) << path << " is served but not documented";

  // The process.
  const Json& p = doc["process"];
  EXPECT_EQ(p["pid"], lb_.pid());
  EXPECT_EQ(p["workers"], 2);
  EXPECT_GT(p["uptime_seconds"].get<double>(), 0);
  EXPECT_LT(p["uptime_seconds"].get<double>(), 120);
  EXPECT_NE(run_command({runfile("server/ringlb"), "--version"}).output.find(p["version"].get<std::string>()),
            std::string::npos);
  EXPECT_EQ(p["reload_failures"], 0);
  EXPECT_EQ(p["connections_accepted"], 6);
  EXPECT_EQ(p["connections_active"], 1);
  EXPECT_NEAR(doc["time_unix_ms"].get<double>() / 1000, p["start_time_unix"].get<double>() + p["uptime_seconds"].get<double>(), 2);

  // The listeners: names, bound addresses, counts, and their history saw the traffic.
  const Json* front = find_named(doc["listeners"], "front");
  const Json* api = find_named(doc["listeners"], "api");
  ASSERT_TRUE(front && api) << doc["listeners"].dump();
  EXPECT_EQ((*front)["address"], "127.0.0.1:" + std::to_string(lb_.port(0)));
  EXPECT_EQ((*api)["address"], "127.0.0.1:" + std::to_string(lb_.port(1)));
  EXPECT_EQ((*front)["clusters"], Json::array({"web"}));
  EXPECT_EQ((*front)["tls"], false);
  EXPECT_EQ((*front)["connections_total"], 5);
  EXPECT_EQ((*api)["connections_total"], 1);
  EXPECT_EQ((*front)["connections_active"], 1);
  const size_t samples = doc["history"]["samples"];
  EXPECT_EQ((*front)["history"]["active"].size(), samples);
  double peak = 0;
  for (const Json& r : (*front)["history"]["rate"]) peak = std::max(peak, r.is_null() ? 0 : r.get<double>());
  EXPECT_GT(peak, 0) << (*front)["history"].dump();
  EXPECT_EQ((*front)["history"]["active"].back(), 1);

  // The clusters and backends: the traffic's counts and bytes, and the dead one's health.
  const Json* web = find_named(doc["clusters"], "web");
  const Json* apic = find_named(doc["clusters"], "api");
  ASSERT_TRUE(web && apic);
  EXPECT_EQ((*web)["policy"], "roundrobin");
  EXPECT_EQ((*apic)["policy"], "leastconn");
  EXPECT_EQ((*web)["discovery"], "file");
  uint64_t total = 0, sent = 0, received = 0;
  for (const Json& be : (*web)["backends"]) {
    EXPECT_EQ(be["state"], "up") << be.dump();
    EXPECT_EQ(be["healthy"], true);
    EXPECT_EQ(be["check"]["last_result"], "ok");
    EXPECT_EQ(be["check"]["reason"], nullptr);
    EXPECT_EQ(be["history"]["up"].back(), 1.0);
    total += be["connections_total"].get<uint64_t>();
    sent += be["bytes_sent"].get<uint64_t>();
    received += be["bytes_received"].get<uint64_t>();
  }
  EXPECT_EQ(total, 5u);
  EXPECT_EQ(sent, 4000u + 2);
  EXPECT_EQ(received, 4000u + 2);
  const Json* down = find_named((*apic)["backends"], dead);
  ASSERT_TRUE(down) << (*apic)["backends"].dump();
  EXPECT_EQ((*down)["state"], "down");
  EXPECT_EQ((*down)["healthy"], false);
  EXPECT_EQ((*down)["check"]["last_result"], "refused");
  EXPECT_NE((*down)["check"]["reason"].get<std::string>().find("refused"), std::string::npos);
  EXPECT_EQ((*down)["history"]["up"].back(), 0.0);
  EXPECT_EQ((*down)["connections_total"], 0);
  EXPECT_EQ((*find_named((*apic)["backends"], c.address()))["bytes_sent"], 500);

  // ?history=0 leaves every series out; a bad value is refused.
  const Json lean = status("?history=0");
  EXPECT_FALSE(lean.contains("history"));
  EXPECT_FALSE(lean["listeners"][0].contains("history"));
  EXPECT_EQ(http_request(lb_.metrics_port(), "GET", "/api/v1/status?history=yes").status, 400);
}

TEST_F(StatusApi, ADrainedBackendAndADeadOneShowAsSuch) {
  Backend a(echo_handler()), c(echo_handler());
  auto b = std::make_unique<Backend>(echo_handler());
  const std::string b_address = b->address();
  start({a.address(), b_address}, {c.address()});
  ASSERT_EQ(run_command({runfile("server/ringlb"), "ctl", sock_, "drain", "web", a.address()}).exit_code, 0);
  b->stop();
  Json doc;
  auto state = [&](const std::string& name) {
    const Json* be = find_named((*find_named(doc["clusters"], "web"))["backends"], name);
    return be ? (*be)["state"].get<std::string>() : "";
  };
  ASSERT_TRUE(eventually([&] {
    doc = status("?history=0");
    return state(a.address()) == "draining" && state(b_address) == "down";
  }, 10s)) << doc.dump(1);
  const Json* drained = find_named((*find_named(doc["clusters"], "web"))["backends"], a.address());
  EXPECT_EQ((*drained)["admin"], "drain");
  EXPECT_EQ((*drained)["weight"], 0);
  EXPECT_EQ((*drained)["configured_weight"], 1);
  EXPECT_EQ((*drained)["healthy"], false);
}

TEST_F(StatusApi, ConnectionsArePagedAndCapped) {
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;
  setrlimit(RLIMIT_NOFILE, &nofile);
  // A backend that never accepts: each connect completes in its backlog and stays.
  uint16_t port = 0;
  Fd silent = listen_loopback(&port, 4096);
  const std::string silent_address = "127.0.0.1:" + std::to_string(port);
  start({silent_address}, {silent_address});
  constexpr size_t kClients = 1010;  // over the most one page may hold (1000)
  std::vector<Fd> clients;
  std::set<std::string> peers;
  for (size_t i = 0; i < kClients; ++i) {
    clients.push_back(connect_loopback(lb_.port(0)));
    ASSERT_TRUE(clients.back()) << i;
    peers.insert("127.0.0.1:" + std::to_string(local_port(clients.back().get())));
  }
  Json page;
  ASSERT_TRUE(eventually([&] {
    page = get_json(lb_.metrics_port(), "/api/v1/connections");
    return page.is_object() && page["total"] == kClients;
  }, 20s)) << page.dump().substr(0, 500);
  EXPECT_EQ(page["limit"], 100);
  EXPECT_EQ(page["offset"], 0);
  EXPECT_EQ(page["connections"].size(), 100u);
  check_documented(page, documented_fields("/api/v1/connections"));

  const HttpReply full = http_request(lb_.metrics_port(), "GET", "/api/v1/connections?limit=1000");
  ASSERT_EQ(full.status, 200);
  const Json most = Json::parse(full.body);
  ASSERT_EQ(most["connections"].size(), 1000u);  // capped at a page of 1000
  EXPECT_LT(full.body.size(), 1000u * 600);      // about 400 bytes a connection
  std::set<std::string> listed;
  for (const Json& c : most["connections"]) {
    EXPECT_EQ(c["client"]["local"], "127.0.0.1:" + std::to_string(lb_.port(0)));
    EXPECT_EQ(c["backend"]["name"], silent_address);
    EXPECT_EQ(c["backend"]["peer"], silent_address);
    listed.insert(c["client"]["peer"].get<std::string>());
  }
  const Json rest = get_json(lb_.metrics_port(), "/api/v1/connections?limit=1000&offset=1000");
  ASSERT_EQ(rest["connections"].size(), kClients - 1000);
  for (const Json& c : rest["connections"]) listed.insert(c["client"]["peer"].get<std::string>());
  EXPECT_EQ(listed, peers);  // the two pages: every client once
  EXPECT_EQ(get_json(lb_.metrics_port(), "/api/v1/connections?offset=5000")["connections"].size(), 0u);

  for (const char* bad : {"limit=1001", "limit=0", "limit=-1", "limit=x", "offset=x", "offset=", "limit=99999999999"}) {
    int code = 0;
    const Json e = get_json(lb_.metrics_port(), std::string("/api/v1/connections?") + bad, &code);
    EXPECT_EQ(code, 400) << bad;
    EXPECT_TRUE(e.is_object() && e["error"].is_string()) << bad;
  }
}

TEST_F(StatusApi, OnlyKnownPathsAndOnlyGetOrHead) {
  Backend a(echo_handler());
  start({a.address()}, {a.address()});
  const uint16_t port = lb_.metrics_port();
  for (const char* path : {"/x", "/api", "/api/v1", "/api/v1/", "/api/v1/status/", "/api/v1/statusx",
                           "/api/v2/status", "/api/v1/status/x", "/index.html", "/metrics/", "/metricsx"}) {
    EXPECT_EQ(http_request(port, "GET", path).status, 404) << path;
  }
  for (const char* path : {"/", "/api/v1/status", "/api/v1/connections", "/metrics"}) {
    for (const char* method : {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
      HttpReply r = http_request(port, method, path);
      EXPECT_EQ(r.status, 405) << method << " " << path;
      EXPECT_EQ(r.headers["allow"], "GET, HEAD") << method << " " << path;
    }
    HttpReply get = http_request(port, "GET", path);
    HttpReply head = http_request(port, "HEAD", path);
    EXPECT_EQ(get.status, 200) << path;
    EXPECT_EQ(head.status, 200) << path;
    EXPECT_TRUE(head.body.empty()) << path;
    EXPECT_EQ(head.headers["content-type"], get.headers["content-type"]) << path;
    EXPECT_EQ(std::stoul(get.headers["content-length"]), get.body.size()) << path;
    EXPECT_LT(get.body.size(), 16u << 20) << path;
  }
  // /metrics as before: Prometheus' text, its header lines in the Exposer's order and no others.
  HttpReply metrics = http_request(port, "GET", "/metrics");
  EXPECT_EQ(metrics.headers.size(), 2u);
  EXPECT_EQ(metrics.headers["content-type"], "text/plain; charset=utf-8");
  EXPECT_EQ(metrics.body.rfind("# HELP exposer_transferred_bytes_total", 0), 0u);
  // The page: HTML that loads nothing from anywhere (and may not: its Content-Security-Policy).
  HttpReply page = http_request(port, "GET", "/");
  EXPECT_EQ(page.headers["content-type"], "text/html; charset=utf-8");
  EXPECT_NE(page.headers["content-security-policy"].find("default-src 'none'"), std::string::npos);
  EXPECT_NE(page.body.find("/api/v1/status"), std::string::npos);
  for (const char* external : {"src=\"http", "href=\"http", "src=\"//", "href=\"//", "@import", "url("}) {
    EXPECT_EQ(page.body.find(external), std::string::npos) << external;
  }
  EXPECT_EQ(page.body.find("<form"), std::string::npos);  // read-only
}

}  // namespace
}  // namespace ringlb::testing
