// `ringlb ctl PATH --json COMMAND` for every command: one object on stdout, parsed, with the
// status API's field names (a backend is the same object as in /api/v1/status), and a refusal
// as {"error": ...} with exit code 1 (2 when the socket cannot be reached).
#include <gtest/gtest.h>

#include <set>
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

struct CtlJson {
  int exit_code = -1;
  Json object;
  std::string output;
};

CtlJson ctl_json(const std::string& sock, std::vector<std::string> words) {
  std::vector<std::string> argv{runfile("server/ringlb"), "ctl", sock, "--json"};
  argv.insert(argv.end(), words.begin(), words.end());
  const RunResult r = run_command(argv);
  return {r.exit_code, first_object(r.output), r.output};
}

std::set<std::string> keys(const Json& o) {
  std::set<std::string> out;
  for (const auto& [k, v] : o.items()) out.insert(k);
  return out;
}

const Json* backend_in(const Json& list, const std::string& name) {
  for (const Json& b : list) {
    if (b["name"] == name) return &b;
  }
  return nullptr;
}

class CtlJsonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sock_ = scratch_socket_path("json.sock");
    ASSERT_TRUE(lb_.start({"--listen", "127.0.0.1:0", "--backend", a_.address(), "--backend", b_.address(),
                           "--workers", "2", "--control-socket", sock_, "--health-interval", "100ms"}))
        << lb_.output();
  }
  // The backend objects of /api/v1/status, every cluster's.
  Json api_backends() {
    Json all = Json::array();
    const Json status = get_json(lb_.metrics_port(), "/api/v1/status?history=0");
    for (const Json& c : status["clusters"]) {
      for (const Json& b : c["backends"]) all.push_back(b);
    }
    return all;
  }

  Backend a_{echo_handler()}, b_{echo_handler()};
  std::string sock_;
  RinglbProcess lb_;
};

TEST_F(CtlJsonTest, BackendsAreTheApisObjects) {
  const CtlJson r = ctl_json(sock_, {"backends"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(r.object.is_object() && r.object["backends"].is_array()) << r.output;
  ASSERT_EQ(r.object["backends"].size(), 2u);
  const Json api = api_backends();
  for (const Json& b : r.object["backends"]) {
    const Json* same = backend_in(api, b["name"]);
    ASSERT_TRUE(same) << b.dump();
    // The API's object has the sampler's fields besides: otherwise the same names.
    std::set<std::string> api_keys = keys(*same);
    api_keys.erase("connection_rate");
    api_keys.erase("history");
    EXPECT_EQ(keys(b), api_keys);
    EXPECT_EQ(b["cluster"], "default");
    EXPECT_EQ(b["state"], "up");
    EXPECT_EQ(b["weight"], 1);
    EXPECT_EQ(b["address"], b["name"]);
    EXPECT_TRUE(b["check"]["checks_total"].is_number_integer());
  }
}

TEST_F(CtlJsonTest, EveryBackendCommandAnswersWithTheBackend) {
  CtlJson r = ctl_json(sock_, {"drain", "default", a_.address()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.object["ok"], true);
  EXPECT_EQ(r.object["command"], "drain default " + a_.address());
  EXPECT_NE(r.object["result"].get<std::string>().find("drain"), std::string::npos);
  EXPECT_EQ(r.object["backend"]["state"], "draining");
  EXPECT_EQ(r.object["backend"]["admin"], "drain");
  EXPECT_EQ(r.object["backend"]["weight"], 0);
  // The API agrees.
  EXPECT_EQ((*backend_in(api_backends(), a_.address()))["state"], "draining");

  r = ctl_json(sock_, {"set-weight", "default", b_.address(), "3"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.object["backend"]["runtime_weight"], 3);
  EXPECT_EQ(r.object["backend"]["weight"], 3);
  EXPECT_EQ(r.object["backend"]["configured_weight"], 1);

  r = ctl_json(sock_, {"overrides"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ(r.object["overrides"].size(), 2u) << r.output;
  const Json* drained = backend_in(r.object["overrides"], a_.address());
  const Json* weighted = backend_in(r.object["overrides"], b_.address());
  ASSERT_TRUE(drained && weighted) << r.output;
  EXPECT_EQ((*drained)["admin"], "drain");
  EXPECT_EQ((*drained)["runtime_weight"], nullptr);
  EXPECT_EQ((*drained)["commands"], Json::array({"drain default " + a_.address()}));
  EXPECT_EQ((*weighted)["runtime_weight"], 3);
  EXPECT_EQ((*weighted)["commands"], Json::array({"set-weight default " + b_.address() + " 3"}));

  r = ctl_json(sock_, {"disable", "default", a_.address()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.object["backend"]["state"], "disabled");
  EXPECT_EQ(r.object["backend"]["admin"], "maint");

  r = ctl_json(sock_, {"enable", "default", a_.address()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.object["backend"]["admin"], "enabled");
  EXPECT_EQ(r.object["backend"]["weight"], 1);

  r = ctl_json(sock_, {"set-weight", "default", b_.address(), "reset"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.object["backend"]["runtime_weight"], nullptr);
  r = ctl_json(sock_, {"overrides"});
  EXPECT_EQ(r.object["overrides"], Json::array()) << r.output;
}

TEST_F(CtlJsonTest, ConnectionsListsTheLiveOnes) {
  CtlJson r = ctl_json(sock_, {"connections"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.object["total"], 0);
  EXPECT_EQ(r.object["connections"], Json::array());
  std::vector<Fd> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(connect_loopback(lb_.port()));
    ASSERT_TRUE(write_all(held.back().get(), "x", 1));
    char c;
    set_recv_timeout(held.back().get(), 5000);
    ASSERT_TRUE(read_exact(held.back().get(), &c, 1));
  }
  r = ctl_json(sock_, {"connections"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.object["total"], 3);
  EXPECT_EQ(r.object["limit"], 3);
  ASSERT_EQ(r.object["connections"].size(), 3u);
  std::set<std::string> peers;
  for (const Json& c : r.object["connections"]) {
    peers.insert(c["client"]["peer"].get<std::string>());
    EXPECT_TRUE(c["worker"].is_number_integer());
    EXPECT_TRUE(c["client"]["rtt_us"].is_number_integer());
    const std::string backend = c["backend"]["name"];
    EXPECT_TRUE(backend == a_.address() || backend == b_.address()) << backend;
    EXPECT_EQ(c["backend"]["peer"], backend);
  }
  for (const Fd& f : held) EXPECT_TRUE(peers.count("127.0.0.1:" + std::to_string(local_port(f.get()))));
  // The API lists the same connections.
  const Json api = get_json(lb_.metrics_port(), "/api/v1/connections");
  EXPECT_EQ(api["total"], 3);
}

TEST_F(CtlJsonTest, RefusalsAreErrorObjects) {
  for (const std::vector<std::string>& words : std::vector<std::vector<std::string>>{
           {"drain", "default", "10.9.9.9:1"},
           {"drain", "nope", a_.address()},
           {"set-weight", "default", a_.address(), "9999"},
           {"bogus"},
           {"listeners"}}) {
    const CtlJson r = ctl_json(sock_, words);
    EXPECT_EQ(r.exit_code, 1) << words[0] << ": " << r.output;
    ASSERT_TRUE(r.object.is_object()) << words[0] << ": " << r.output;
    EXPECT_TRUE(r.object["error"].is_string()) << r.output;
    EXPECT_EQ(r.object.size(), 1u) << r.output;
  }
  CtlJson r = ctl_json(sock_, {});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(r.object["error"].is_string()) << r.output;
  r = ctl_json(scratch_socket_path("absent.sock"), {"backends"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.object["error"].get<std::string>().find("cannot connect"), std::string::npos) << r.output;
  // Nothing changed by the refusals; and the plain commands answer as before.
  const RunResult plain = run_command({runfile("server/ringlb"), "ctl", sock_, "backends"});
  EXPECT_EQ(plain.exit_code, 0);
  EXPECT_EQ(plain.output.rfind("CLUSTER", 0), 0u) << plain.output;
  EXPECT_EQ(ctl_json(sock_, {"overrides"}).object["overrides"], Json::array());
}

}  // namespace
}  // namespace ringlb::testing
