#include "server/status/status_json.h"

#include <unistd.h>

#include <map>
#include <set>

#include "server/base/clock.h"
#include "server/discovery/cluster_publisher.h"
#include "server/status/backend_json.h"

namespace ringlb::status {
namespace {

Json rate_json(const std::optional<double>& rate) {
  return rate ? Json(static_cast<double>(static_cast<int64_t>(*rate * 100 + 0.5)) / 100) : Json(nullptr);
}

Json process_json(SharedState& shared, const std::string& version) {
  const metrics::Registry& r = *shared.registry;
  Json p;
  p["version"] = version;
  p["pid"] = getpid();
  p["start_time_unix"] = r.start_time_seconds;
  p["uptime_seconds"] = static_cast<double>(unix_ms()) / 1000 - r.start_time_seconds;
  p["workers"] = shared.workers.size();
  p["reloads"] = r.reloads.get();
  p["reload_failures"] = r.reload_failures.get();
  p["connections_active"] = shared.active_connections();
  p["connections_accepted"] = r.acceptor.accepted.get();
  p["max_connections"] = shared.config.max_connections;
  return p;
}

// Where a cluster's backends come from: "etcd" (a prefix), "dns" (names), else "file".
const char* discovery_of(const ClusterConfig& c) {
  if (!c.etcd_prefix.empty()) return "etcd";
  if (!c.names.empty()) return "dns";
  return "file";
}

Json listeners_json(SharedState& shared, const Config& effective, const History* history) {
  std::shared_ptr<const ListenerPolicies> policies;
  {
    std::lock_guard<std::mutex> lock(shared.policies_mu);
    policies = shared.policies;
  }
  const metrics::Registry& r = *shared.registry;
  Json list = Json::array();
  for (size_t i = 0; policies && i < policies->listeners.size(); ++i) {
    if (policies->listeners[i].removed) continue;
    const ListenerRoute& route = shared.routes[i];
    Json l;
    l["name"] = route.name;
    l["index"] = i;
    l["address"] = shared.listen_bound[i].to_string();
    l["protocol"] = "tcp";
    l["tls"] = route.tls;  // it ends TLS ([listener.tls])
    l["accept_proxy"] = route.accept_proxy;
    l["sni"] = route.sni;
    // The clusters its clients may go to: its one, or its SNI routes' (from the config).
    std::set<std::string> clusters;
    if (!route.sni) clusters.insert(shared.backends.cluster_name(route.cluster));
    for (const ListenConfig& c : effective.listen) {
      if (c.name != route.name || !route.sni) continue;
      for (const SniRoute& s : c.sni_routes) clusters.insert(s.cluster);
      if (!c.sni_default.empty()) clusters.insert(c.sni_default);
    }
    l["clusters"] = std::vector<std::string>(clusters.begin(), clusters.end());
    l["connections_active"] = shared.listener_active[i].load(std::memory_order_relaxed);
    l["connections_total"] = i < r.listener_accepted.size() ? r.listener_accepted[i].get() : 0;
    l["connection_rate"] = rate_json(history ? history->listener_rate(i) : std::nullopt);
    if (history) l["history"] = history->listener_series(i);
    list.push_back(std::move(l));
  }
  return list;
}

Json clusters_json(SharedState& shared, const Config& effective, const History* history) {
  std::map<std::string, Json> backends;  // by cluster
  for (const control::BackendStatus& s : control::backend_statuses(shared)) {
    Json b = backend_json(s, shared);
    if (history) {
      b["connection_rate"] = rate_json(s.id ? history->backend_rate(*s.id, s.cluster, s.backend) : std::nullopt);
      b["history"] = s.id ? history->backend_series(*s.id, s.cluster, s.backend)
                          : history->backend_series(balancer::BackendRegistry::kCapacity, "", "");
    }
    auto [it, added] = backends.try_emplace(s.cluster, Json::array());
    it->second.push_back(std::move(b));
  }
  Json list = Json::array();
  for (const ClusterConfig& c : effective.clusters) {
    Json j;
    j["name"] = c.name;
    j["policy"] = balancer::policy_name(c.policy);
    j["discovery"] = discovery_of(c);
    j["tls"] = c.tls.has_value();  // its backends are reached with TLS ([cluster.NAME.tls])
    auto it = backends.find(c.name);
    j["backends"] = it == backends.end() ? Json::array() : std::move(it->second);
    list.push_back(std::move(j));
  }
  return list;
}

}  // namespace

Json status_json(SharedState& shared, const std::string& version, const History* history) {
  const Config effective = shared.publisher->effective();
  Json out;
  out["api_version"] = 1;
  out["time_unix_ms"] = unix_ms();
  out["process"] = process_json(shared, version);
  out["listeners"] = listeners_json(shared, effective, history);
  out["clusters"] = clusters_json(shared, effective, history);
  if (history) out["history"] = history->summary();
  return out;
}

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

}  // namespace ringlb::status
