// Publishing a configuration to the runtime: per-cluster snapshots (republished only when they
// changed), retired clusters, listeners' policies (removed ones kept, marked), and what a reload
// does not apply.
#include "server/runtime/publish.h"
#include "server/runtime/reload.h"
#include "server/runtime/shared_state.h"

#include <gtest/gtest.h>

namespace ringlb {
namespace {

ClusterConfig cluster(const std::string& name, std::vector<std::string> backends,
                      balancer::Policy policy = balancer::Policy::kRoundRobin) {
  ClusterConfig c;
  c.name = name;
  c.policy = policy;
  for (const std::string& text : backends) {
    BackendConfig b;
    const Status parsed = parse_backend(text, &b);
    EXPECT_TRUE(parsed.ok()) << parsed.message();
    c.backends.push_back(b);
  }
  return c;
}

ListenConfig listener(const std::string& name, const std::string& address, const std::string& to) {
  ListenConfig l;
  l.name = name;
  std::string why;
  EXPECT_TRUE(parse_address(address, &l.address, &why)) << why;
  l.cluster = to;
  return l;
}

Config two_clusters() {
  Config c;
  c.clusters = {cluster("web", {"127.0.0.1:1", "127.0.0.1:2"}), cluster("api", {"127.0.0.1:2"})};
  c.listen = {listener("a", "127.0.0.1:10", "web"), listener("b", "127.0.0.1:11", "api")};
  return c;
}

TEST(SharedState, PublishesEachClusterAndOnlyThoseThatChanged) {
  const Config c = two_clusters();
  SharedState shared(c);
  ASSERT_EQ(set_up_routes(c, &shared).message(), "");
  std::vector<std::string> changed;
  ASSERT_EQ(publish_config(c, 1, &shared, &changed).message(), "");
  EXPECT_EQ(changed, (std::vector<std::string>{"web", "api"}));
  EXPECT_EQ(shared.routes[1].cluster, 1);
  EXPECT_EQ(shared.clusters[1].get()->backends.size(), 1u);
  // 127.0.0.1:2 is a backend of each cluster: two ids.
  EXPECT_NE(shared.clusters[0].get()->backends[1].id, shared.clusters[1].get()->backends[0].id);

  Config next = c;
  next.clusters[1].policy = balancer::Policy::kMaglev;
  next.listen[0].idle_timeout = Millis(1000);
  changed.clear();
  ASSERT_EQ(publish_config(next, 2, &shared, &changed).message(), "");
  EXPECT_EQ(changed, (std::vector<std::string>{"api"}));
  EXPECT_EQ(shared.clusters[0].version(), 1u);
  EXPECT_EQ(shared.clusters[1].version(), 2u);
  EXPECT_EQ(shared.policies->listeners[0].idle_timeout.count(), 1000);
  EXPECT_EQ(shared.policies_version.load(), 2u);
}

TEST(SharedState, ARemovedClusterIsRetiredAndABadOnePublishesNothing) {
  Config c = two_clusters();
  c.clusters.push_back(cluster("spare", {"127.0.0.1:3"}));
  SharedState shared(c);
  ASSERT_EQ(set_up_routes(c, &shared).message(), "");
  ASSERT_EQ(publish_config(c, 1, &shared).message(), "");
  Config bad = two_clusters();
  bad.clusters[0].policy = balancer::Policy::kMaglev;
  bad.clusters[0].maglev_size = 10;  // not prime
  EXPECT_NE(publish_config(bad, 2, &shared).message().find("cluster 'web'"), std::string::npos);
  EXPECT_EQ(shared.clusters[0].version(), 1u);
  std::vector<std::string> changed;
  ASSERT_EQ(publish_config(two_clusters(), 3, &shared, &changed).message(), "");
  EXPECT_EQ(changed, (std::vector<std::string>{"spare (removed)"}));
  EXPECT_TRUE(shared.clusters[2].get()->retired);
  EXPECT_TRUE(shared.clusters[2].get()->backends.empty());
}

TEST(SharedState, AListenerServesInPlaceOnlyWithTheSameAddressAndRoutes) {
  const Config c = two_clusters();
  EXPECT_TRUE(same_listener(c.listen[0], c.listen[0]));
  Config moved = c;
  moved.listen[0].cluster = "api";
  EXPECT_FALSE(same_listener(c.listen[0], moved.listen[0]));
  Config rebound = c;
  std::string why;
  ASSERT_TRUE(parse_address("127.0.0.1:99", &rebound.listen[1].address, &why));
  EXPECT_FALSE(same_listener(c.listen[1], rebound.listen[1]));
  Config proxied = c;
  proxied.listen[0].accept_proxy = true;
  EXPECT_FALSE(same_listener(c.listen[0], proxied.listen[0]));
  // What a listener may change in place: lists, limits, timeouts.
  Config tuned = c;
  tuned.listen[0].max_connections = 5;
  tuned.listen[0].fin_timeout = Millis(10);
  EXPECT_TRUE(same_listener(c.listen[0], tuned.listen[0]));
}

TEST(SharedState, ARemovedListenerKeepsItsIndexAndItsSettingsMarkedRemoved) {
  const Config c = two_clusters();
  SharedState shared(c);
  ASSERT_EQ(set_up_routes(c, &shared).message(), "");
  ASSERT_EQ(publish_config(c, 1, &shared).message(), "");
  Config next = c;
  next.listen.erase(next.listen.begin());  // 'a' goes
  next.listen.push_back(listener("c", "127.0.0.1:12", "web"));
  shared.listener_live[0] = false;
  shared.listener_configs.push_back(next.listen[1]);
  shared.listener_live.push_back(true);
  const std::vector<uint16_t> indexes = {1, 2};
  ASSERT_EQ(publish_config(next, 2, &shared, nullptr, &indexes).message(), "");
  ASSERT_EQ(shared.policies->listeners.size(), 3u);
  EXPECT_TRUE(shared.policies->listeners[0].removed);
  EXPECT_EQ(shared.policies->listeners[0].idle_timeout, c.idle_timeout);
  EXPECT_FALSE(shared.policies->listeners[1].removed);
  EXPECT_FALSE(shared.policies->listeners[2].removed);
}

// Bandwidth limits: a listener's go into its policy, a cluster's into its snapshot, and a reload
// that changes only a cluster's rate republishes it (new connections take the new rate).
TEST(SharedState, BandwidthLimitsArePublishedAndAChangeRepublishes) {
  Config c = two_clusters();
  c.listen[0].download_rate = 4u << 20;
  c.listen[1].upload_rate = 1000;
  c.clusters[0].upload_rate = 500'000;
  SharedState shared(c);
  ASSERT_EQ(set_up_routes(c, &shared).message(), "");
  ASSERT_EQ(publish_config(c, 1, &shared).message(), "");
  EXPECT_EQ(shared.policies->listeners[0].download_rate, 4u << 20);
  EXPECT_EQ(shared.policies->listeners[0].upload_rate, 0u);
  EXPECT_EQ(shared.policies->listeners[1].upload_rate, 1000u);
  EXPECT_EQ(shared.clusters[0].get()->upload_rate, 500'000u);
  EXPECT_EQ(shared.clusters[0].get()->download_rate, 0u);
  EXPECT_EQ(shared.clusters[1].get()->upload_rate, 0u);

  Config next = c;
  next.clusters[1].download_rate = 2u << 20;
  next.listen[0].download_rate = 1u << 20;
  std::vector<std::string> changed;
  ASSERT_EQ(publish_config(next, 2, &shared, &changed).message(), "");
  EXPECT_EQ(changed, (std::vector<std::string>{"api"}));
  EXPECT_EQ(shared.clusters[1].get()->download_rate, 2u << 20);
  EXPECT_EQ(shared.policies->listeners[0].download_rate, 1u << 20);
}

TEST(SharedState, WhatAReloadDoesNotApplyIsNamed) {
  const Config c = two_clusters();
  EXPECT_TRUE(not_applied_at_reload(c, c).empty());
  Config more = c;
  more.workers = 3;
  more.buffer_size = 4096;
  const std::vector<std::string> lines = not_applied_at_reload(c, more);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("--workers"), std::string::npos);
  EXPECT_NE(lines[1].find("--buffer-size"), std::string::npos);
  // [resolvers]: the c-ares channel is made once (names themselves are reloaded).
  Config servers = c;
  servers.resolvers.timeout = Millis{5000};
  ASSERT_EQ(not_applied_at_reload(c, servers).size(), 1u);
  EXPECT_NE(not_applied_at_reload(c, servers)[0].find("[resolvers]"), std::string::npos);
  // Each worker reads the interim records' interval at start.
  Config interim = c;
  interim.access_log_interval = Millis(60'000);
  ASSERT_EQ(not_applied_at_reload(c, interim).size(), 1u);
  EXPECT_NE(not_applied_at_reload(c, interim)[0].find("--access-log-interval"), std::string::npos);
}

TEST(SharedState, AReloadFreesARemovedBackendsIdOnceNoSnapshotNamesIt) {
  Config c = two_clusters();
  SharedState shared(c);
  shared.registry = std::make_unique<metrics::Registry>(2, &shared.backends);
  ASSERT_EQ(set_up_routes(c, &shared).message(), "");
  ASSERT_EQ(publish_config(c, 1, &shared).message(), "");
  const uint32_t kept = shared.clusters[0].get()->backends[0].id;
  const uint32_t removed = shared.clusters[0].get()->backends[1].id;
  for (uint32_t id : {kept, removed}) {
    shared.registry->workers[1]->backends[id].connect_attempts.add(5);
    shared.registry->workers[0]->backends[id].connect_latency.observe_ns(1000);
  }
  // A connection still holds the old snapshot: the removed backend stays live.
  std::shared_ptr<const balancer::Snapshot> held = shared.clusters[0].get();
  c.clusters[0] = cluster("web", {"127.0.0.1:1", "127.0.0.1:3"});
  ASSERT_EQ(publish_config(c, 2, &shared).message(), "");
  EXPECT_TRUE(shared.backends.live(removed));
  EXPECT_EQ(shared.backend_addresses[removed].to_string(), "127.0.0.1:2");
  held.reset();
  EXPECT_FALSE(shared.backends.live(removed));
  EXPECT_EQ(shared.registry->workers[1]->backends[removed].connect_attempts.get(), 0u);
  EXPECT_EQ(shared.registry->workers[0]->backends[removed].connect_latency.count(), 0u);
  EXPECT_EQ(shared.backend_addresses[removed].to_string(), Address{}.to_string());
  // The kept one has its id and its counts.
  EXPECT_EQ(shared.clusters[0].get()->backends[0].id, kept);
  EXPECT_EQ(shared.registry->workers[1]->backends[kept].connect_attempts.get(), 5u);
  // The next new backend gets the freed id.
  c.clusters[0] = cluster("web", {"127.0.0.1:1", "127.0.0.1:3", "127.0.0.1:4"});
  ASSERT_EQ(publish_config(c, 3, &shared).message(), "");
  EXPECT_EQ(shared.clusters[0].get()->backends[2].id, removed);
  EXPECT_EQ(shared.backend_addresses[removed].to_string(), "127.0.0.1:4");
}

// Slow start: backends of the first config start at full weight; one a reload adds ramps, one it
// keeps does not. A changed check republishes its cluster.
TEST(SharedState, ReloadAddedBackendsRampAndCheckChangesRepublish) {
  Config c = two_clusters();
  c.clusters[0].health.slow_start = Millis(10000);
  SharedState shared(c);
  ASSERT_EQ(set_up_routes(c, &shared).message(), "");
  ASSERT_EQ(publish_config(c, 1, &shared).message(), "");
  for (const auto& b : shared.clusters[0].get()->backends) EXPECT_EQ(b.state->ramp_from_ns.load(), 0u) << b.name;
  EXPECT_EQ(shared.clusters[0].get()->backends[0].slow_start_ms, 10000u);
  shared.ramp_new_backends = true;  // start-up is done (main.cc)

  Config next = c;
  next.clusters[0] = cluster("web", {"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"});
  next.clusters[0].health.slow_start = Millis(10000);
  ASSERT_EQ(publish_config(next, 2, &shared).message(), "");
  const auto web = shared.clusters[0].get();
  EXPECT_EQ(web->backends[0].state->ramp_from_ns.load(), 0u) << "kept: no ramp";
  EXPECT_NE(web->backends[2].state->ramp_from_ns.load(), 0u) << "added by the reload: ramps";

  Config checked = next;
  std::string why;
  ASSERT_TRUE(health::set_check_text("check", "http", &checked.clusters[0].health.check, &why));
  std::vector<std::string> changed;
  ASSERT_EQ(publish_config(checked, 3, &shared, &changed).message(), "");
  EXPECT_EQ(changed, (std::vector<std::string>{"web"}));
  ASSERT_NE(shared.clusters[0].get()->backends[0].check, nullptr);
  EXPECT_EQ(shared.clusters[0].get()->backends[0].check->type, health::CheckType::kHttp);
  changed.clear();
  ASSERT_EQ(publish_config(checked, 4, &shared, &changed).message(), "");
  EXPECT_TRUE(changed.empty()) << "the same check: nothing to republish";
}

}  // namespace
}  // namespace ringlb
