// The publisher merges the file's backends, discovered lists and runtime overrides, and
// publishes a cluster only when that changes it: backends that stay keep their ids (so their
// connections, stats and health state), which is what makes a discovery update like a reload.
#include "server/discovery/cluster_publisher.h"
#include "server/runtime/publish.h"

#include <gtest/gtest.h>

namespace ringlb::discovery {
namespace {

BackendConfig backend(const std::string& text) {
  BackendConfig b;
  const Status parsed = parse_backend(text, &b);
  EXPECT_TRUE(parsed.ok()) << parsed.message();
  return b;
}

Config config(std::vector<std::string> web_backends, bool discovered = true) {
  Config c;
  ClusterConfig web;
  web.name = "web";
  web.discovered = discovered;
  for (const std::string& t : web_backends) web.backends.push_back(backend(t));
  c.clusters = {web};
  ListenConfig l;
  l.name = "a";
  std::string why;
  EXPECT_TRUE(parse_address("127.0.0.1:10", &l.address, &why)) << why;
  l.cluster = "web";
  c.listen = {l};
  return c;
}

std::vector<std::string> names(const SharedState& shared) {
  std::vector<std::string> out;
  for (const auto& b : shared.clusters[0].get()->backends) out.push_back(b.name);
  return out;
}

uint32_t id_of(const SharedState& shared, const std::string& name) {
  for (const auto& b : shared.clusters[0].get()->backends) {
    if (b.name == name) return b.id;
  }
  ADD_FAILURE() << name << " not published";
  return ~0u;
}

struct Fixture : ::testing::Test {
  void start(const Config& c) {
    shared = std::make_unique<SharedState>(c);
    publisher = std::make_unique<ClusterPublisher>(shared.get());
    ASSERT_EQ(set_up_routes(c, shared.get()).message(), "");
    ASSERT_EQ(publisher->publish_file(c), "");
  }
  std::unique_ptr<SharedState> shared;
  std::unique_ptr<ClusterPublisher> publisher;
};

TEST_F(Fixture, DiscoveredBackendsJoinTheFilesAndKeepTheirIdsAcrossUpdates) {
  start(config({"127.0.0.1:1"}));
  bool changed = false;
  ASSERT_EQ(publisher->set_discovered("web", "dns:a", Source::kDns,
                                      {backend("127.0.0.2:80"), backend("127.0.0.3:80")}, &changed),
            "");
  EXPECT_TRUE(changed);
  EXPECT_EQ(names(*shared), (std::vector<std::string>{"127.0.0.1:1", "127.0.0.2:80", "127.0.0.3:80"}));
  const uint32_t kept = id_of(*shared, "127.0.0.3:80");
  shared->backends.state(kept).active.store(7);
  ASSERT_EQ(publisher->set_discovered("web", "dns:a", Source::kDns,
                                      {backend("127.0.0.3:80"), backend("127.0.0.4:80")}, &changed),
            "");
  EXPECT_TRUE(changed);
  EXPECT_EQ(names(*shared), (std::vector<std::string>{"127.0.0.1:1", "127.0.0.3:80", "127.0.0.4:80"}));
  EXPECT_EQ(id_of(*shared, "127.0.0.3:80"), kept);
  EXPECT_EQ(shared->backends.state(kept).active.load(), 7);
  // The same list again publishes nothing: workers keep their pickers.
  const uint64_t version = shared->clusters[0].version();
  ASSERT_EQ(publisher->set_discovered("web", "dns:a", Source::kDns,
                                      {backend("127.0.0.3:80"), backend("127.0.0.4:80")}, &changed),
            "");
  EXPECT_FALSE(changed);
  EXPECT_EQ(shared->clusters[0].version(), version);
}

TEST_F(Fixture, AnAddressNamedTwiceIsOneBackendTheFileFirst) {
  start(config({"127.0.0.1:1,weight=5"}));
  ASSERT_EQ(publisher->set_discovered("web", "dns:a", Source::kDns, {backend("127.0.0.1:1"), backend("127.0.0.2:1")}),
            "");
  ASSERT_EQ(publisher->set_discovered("web", "etcd:/b/", Source::kEtcd, {backend("127.0.0.2:1,weight=3")}), "");
  EXPECT_EQ(names(*shared), (std::vector<std::string>{"127.0.0.1:1", "127.0.0.2:1"}));
  EXPECT_EQ(shared->clusters[0].get()->backends[0].weight, 5u);
  const std::vector<BackendView> views = publisher->backends();
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[0].origin, "file");
  EXPECT_EQ(views[1].origin, "dns:a");  // "dns:a" sorts before "etcd:/b/"
  EXPECT_EQ(views[1].source, Source::kDns);
}

TEST_F(Fixture, ADiscoveredClusterMayBeEmptyAFileOneMayNot) {
  start(config({}, /*discovered=*/true));
  EXPECT_TRUE(shared->clusters[0].get()->backends.empty());
  ASSERT_EQ(publisher->set_discovered("web", "dns:a", Source::kDns, {backend("127.0.0.2:1")}), "");
  ASSERT_EQ(publisher->set_discovered("web", "dns:a", Source::kDns, {}), "");
  EXPECT_TRUE(shared->clusters[0].get()->backends.empty());

  SharedState other(config({}, false));
  ClusterPublisher p(&other);
  EXPECT_NE(p.publish_file(config({}, false)).find("no backends"), std::string::npos);
}

TEST_F(Fixture, UnknownClusterIsRefusedAndNothingIsKept) {
  start(config({"127.0.0.1:1"}));
  EXPECT_EQ(publisher->set_discovered("nope", "dns:a", Source::kDns, {backend("127.0.0.2:1")}),
            "unknown cluster 'nope'");
  EXPECT_EQ(names(*shared), (std::vector<std::string>{"127.0.0.1:1"}));
}

TEST_F(Fixture, OverridesApplyAndSurviveReloadsAndDiscoveryUntilTheBackendLeaves) {
  start(config({"127.0.0.1:1", "127.0.0.1:2"}));
  EXPECT_EQ(publisher->set_override("web", "127.0.0.9:1", Override{3, Admin::kEnabled}),
            "cluster 'web' has no backend '127.0.0.9:1'");
  EXPECT_EQ(publisher->set_override("db", "127.0.0.1:1", Override{3, Admin::kEnabled}), "unknown cluster 'db'");
  ASSERT_EQ(publisher->set_override("web", "127.0.0.1:1", Override{3, Admin::kEnabled}), "");
  ASSERT_EQ(publisher->set_override("web", "127.0.0.1:2", Override{std::nullopt, Admin::kDisabled}), "");
  auto spec = [&](size_t i) { return shared->clusters[0].get()->backends[i]; };
  EXPECT_EQ(spec(0).weight, 3u);
  EXPECT_EQ(spec(1).weight, 0u);
  EXPECT_EQ(spec(1).check_interval_ms, 0u);  // maintenance: not checked
  // A reload and a discovery update keep them.
  ASSERT_EQ(publisher->publish_file(config({"127.0.0.1:1", "127.0.0.1:2"})), "");
  ASSERT_EQ(publisher->set_discovered("web", "dns:a", Source::kDns, {backend("127.0.0.3:1")}), "");
  EXPECT_EQ(spec(0).weight, 3u);
  EXPECT_EQ(spec(1).weight, 0u);
  const std::vector<BackendView> views = publisher->backends();
  EXPECT_EQ(views[0].configured_weight, 1u);
  EXPECT_EQ(views[0].weight, 3u);
  EXPECT_EQ(views[1].admin, Admin::kDisabled);
  // Clearing it restores the configured weight.
  ASSERT_EQ(publisher->set_override("web", "127.0.0.1:2", Override{}), "");
  EXPECT_EQ(spec(1).weight, 1u);
  // A backend that leaves takes its override with it: back, it starts as configured.
  ASSERT_EQ(publisher->publish_file(config({"127.0.0.1:2"})), "");
  ASSERT_EQ(publisher->publish_file(config({"127.0.0.1:1", "127.0.0.1:2"})), "");
  EXPECT_EQ(spec(0).weight, 1u);
  EXPECT_TRUE(publisher->override_of("web", "127.0.0.1:1").empty());
}

TEST_F(Fixture, ARuntimeWeightGivesWayToANewConfiguredWeightTheAdminStateStays) {
  start(config({"127.0.0.1:1", "127.0.0.1:2"}));
  ASSERT_EQ(publisher->set_override("web", "127.0.0.1:1", Override{3, Admin::kDrain}), "");
  ASSERT_EQ(publisher->set_override("web", "127.0.0.1:2", Override{5, Admin::kEnabled}), "");
  auto spec = [&](size_t i) { return shared->clusters[0].get()->backends[i]; };
  // The exporter reads what the publish wrote into the backend's state.
  EXPECT_EQ(spec(0).state->weight.load(), 0u);
  EXPECT_EQ(spec(0).state->admin.load(), static_cast<uint8_t>(Admin::kDrain));
  EXPECT_EQ(spec(1).state->weight.load(), 5u);
  EXPECT_EQ(spec(0).admin, Admin::kDrain);
  // The file now says weight 2 for the first: its runtime weight goes, its drain stays; the
  // second's configured weight did not change, so its runtime weight stays.
  ASSERT_EQ(publisher->publish_file(config({"127.0.0.1:1,weight=2", "127.0.0.1:2"})), "");
  EXPECT_EQ(publisher->override_of("web", "127.0.0.1:1").weight, std::nullopt);
  EXPECT_EQ(publisher->override_of("web", "127.0.0.1:1").admin, Admin::kDrain);
  EXPECT_EQ(spec(1).weight, 5u);
  ASSERT_EQ(publisher->set_override("web", "127.0.0.1:1", Override{}), "");
  EXPECT_EQ(spec(0).weight, 2u);
  EXPECT_EQ(spec(0).state->weight.load(), 2u);
  EXPECT_EQ(spec(0).state->admin.load(), static_cast<uint8_t>(Admin::kEnabled));
  // A discovered backend's weight changed by its source: the same rule.
  ASSERT_EQ(publisher->set_discovered("web", "dns:a", Source::kDns, {backend("127.0.0.3:1,weight=4")}), "");
  ASSERT_EQ(publisher->set_override("web", "127.0.0.3:1", Override{9, Admin::kEnabled}), "");
  EXPECT_EQ(spec(2).weight, 9u);
  ASSERT_EQ(publisher->set_discovered("web", "dns:a", Source::kDns, {backend("127.0.0.3:1,weight=4")}), "");
  EXPECT_EQ(spec(2).weight, 9u);
  ASSERT_EQ(publisher->set_discovered("web", "dns:a", Source::kDns, {backend("127.0.0.3:1,weight=6")}), "");
  EXPECT_EQ(spec(2).weight, 6u);
  EXPECT_TRUE(publisher->override_of("web", "127.0.0.3:1").empty());
}

TEST_F(Fixture, DrainingABackendOfWeightZeroRepublishesNothingYetShowsInItsState) {
  start(config({"127.0.0.1:1,weight=0", "127.0.0.1:2"}));
  const uint64_t version = shared->clusters[0].version();
  ASSERT_EQ(publisher->set_override("web", "127.0.0.1:1", Override{std::nullopt, Admin::kDrain}), "");
  // The workers' pickers stay (nothing they act on changed); the metrics' copy moved.
  EXPECT_EQ(shared->clusters[0].version(), version);
  EXPECT_EQ(shared->clusters[0].get()->backends[0].state->admin.load(), static_cast<uint8_t>(Admin::kDrain));
  EXPECT_EQ(publisher->backends()[0].admin, Admin::kDrain);
}

// Slow start through the publisher: the backends of start-up (the file's, discovery's first
// answers) start at full weight; one a later discovery update adds ramps, and so does one `enable` brings back from a drain or a
// maintenance (one kept as it was does not).
TEST_F(Fixture, DiscoveredAndReEnabledBackendsRampTheFirstOnesDoNot) {
  Config c = config({"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"});
  c.clusters[0].health.slow_start = Millis(10000);
  start(c);
  // Start-up's own discovery answers (before main.cc sets the flag) do not ramp either.
  ASSERT_EQ(publisher->set_discovered("web", "dns:a", Source::kDns, {backend("127.0.0.5:80")}), "");
  shared->ramp_new_backends = true;
  auto ramp = [&](const std::string& name) { return shared->backends.state(id_of(*shared, name)).ramp_from_ns.load(); };
  EXPECT_EQ(ramp("127.0.0.1:1"), 0u);
  EXPECT_EQ(ramp("127.0.0.5:80"), 0u) << "discovered during start-up: no ramp";
  ASSERT_EQ(publisher->set_discovered("web", "etcd:/web/", Source::kEtcd, {backend("127.0.0.4:80")}), "");
  EXPECT_NE(ramp("127.0.0.4:80"), 0u) << "added by discovery: ramps";
  EXPECT_EQ(ramp("127.0.0.1:1"), 0u) << "kept: no ramp";
  ASSERT_EQ(publisher->set_override("web", "127.0.0.1:1", Override{std::nullopt, Admin::kDrain}), "");
  ASSERT_EQ(publisher->set_override("web", "127.0.0.1:2", Override{std::nullopt, Admin::kDisabled}), "");
  ASSERT_EQ(publisher->set_override("web", "127.0.0.1:3", Override{5, Admin::kEnabled}), "");
  EXPECT_EQ(ramp("127.0.0.1:1"), 0u) << "drained: no ramp yet";
  EXPECT_EQ(ramp("127.0.0.1:3"), 0u) << "a new weight is no comeback";
  ASSERT_EQ(publisher->set_override("web", "127.0.0.1:1", Override{}), "");
  ASSERT_EQ(publisher->set_override("web", "127.0.0.1:2", Override{}), "");
  EXPECT_NE(ramp("127.0.0.1:1"), 0u) << "back from a drain: ramps";
  EXPECT_NE(ramp("127.0.0.1:2"), 0u) << "back from maintenance: ramps";
  EXPECT_EQ(ramp("127.0.0.1:3"), 0u);
}

TEST_F(Fixture, AFailedPublishKeepsTheOverrides) {
  start(config({"127.0.0.1:1"}, /*discovered=*/false));
  ASSERT_EQ(publisher->set_override("web", "127.0.0.1:1", Override{3, Admin::kDrain}), "");
  // A file cluster with no backends is refused: the override must not be dropped with it.
  EXPECT_NE(publisher->publish_file(config({}, false)), "");
  EXPECT_EQ(publisher->override_of("web", "127.0.0.1:1").weight, 3u);
  EXPECT_EQ(publisher->backends()[0].runtime_weight, 3u);
}

TEST_F(Fixture, AReloadThatDropsAClusterDropsItsDiscoveredLists) {
  start(config({"127.0.0.1:1"}));
  ASSERT_EQ(publisher->set_discovered("web", "dns:a", Source::kDns, {backend("127.0.0.2:1")}), "");
  Config renamed = config({"127.0.0.1:1"});
  renamed.clusters[0].name = "web2";
  renamed.listen[0].cluster = "web2";
  ASSERT_EQ(set_up_routes(renamed, shared.get()).message(), "");
  ASSERT_EQ(publisher->publish_file(renamed), "");
  ASSERT_EQ(publisher->publish_file(config({"127.0.0.1:1"})), "");
  EXPECT_EQ(names(*shared), (std::vector<std::string>{"127.0.0.1:1"}));
}

TEST_F(Fixture, VersionsOnlyGrow) {
  start(config({"127.0.0.1:1"}));
  uint64_t last = publisher->version();
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(publisher->set_discovered("web", "dns:a", Source::kDns,
                                        {backend("127.0.0.2:" + std::to_string(i + 1))}),
              "");
    EXPECT_GT(shared->clusters[0].version(), 0u);
    EXPECT_GT(publisher->version(), last);
    last = publisher->version();
    EXPECT_EQ(shared->clusters[0].version(), last);
  }
}

}  // namespace
}  // namespace ringlb::discovery
