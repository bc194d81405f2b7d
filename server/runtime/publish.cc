#include "server/runtime/publish.h"

#include <algorithm>
#include <cstring>

#include "server/base/clock.h"

namespace ringlb {
namespace {


Status build_snapshot(const ClusterConfig& c, uint32_t cluster, uint64_t version, SharedState* shared,
                      std::shared_ptr<balancer::Snapshot>* out) {
  // The deleter gives the snapshot's backend ids back (balancer/snapshot.h says when one is freed).
  balancer::BackendRegistry* registry = &shared->backends;
  std::shared_ptr<balancer::Snapshot> snapshot(new balancer::Snapshot, [registry](balancer::Snapshot* s) {
    balancer::release_backends(s, registry);
    delete s;
  });
  snapshot->version = version;
  snapshot->cluster = cluster;
  snapshot->policy = c.policy;
  snapshot->hash_key = c.hash_key;
  // Durations are capped below 2^31 ms by the config's limits, so they fit.
  snapshot->connect_timeout_ms = static_cast<uint32_t>(c.connect_timeout.count());
  snapshot->connect_attempts = c.connect_attempts;
  snapshot->queue_timeout_ms = static_cast<uint32_t>(c.queue_timeout.count());
  snapshot->proxy_client_certificate = c.proxy_client_certificate;
  snapshot->download_rate = c.download_rate;
  snapshot->upload_rate = c.upload_rate;
  for (const BackendConfig& b : c.backends) {
    balancer::BackendSpec spec;
    spec.name = b.text;
    spec.weight = b.weight;
    spec.max_connections = b.max_connections;
    spec.backup = b.backup;
    spec.proxy_protocol = static_cast<uint8_t>(b.proxy_protocol);
    spec.check_interval_ms = static_cast<uint32_t>(b.health_interval.value_or(c.health.interval).count());
    spec.check_timeout_ms = static_cast<uint32_t>(b.health_timeout.value_or(c.health.timeout).count());
    spec.rise = b.health_rise.value_or(c.health.rise);
    spec.fall = b.health_fall.value_or(c.health.fall);
    const health::CheckSpec check = c.health.check.overlaid(b.check).resolve();
    if (!(check == health::CheckSpec{})) spec.check = std::make_shared<const health::CheckSpec>(check);
    spec.slow_start_ms = static_cast<uint32_t>(b.slow_start.value_or(c.health.slow_start).count());
    spec.admin = b.admin;
    snapshot->backends.push_back(spec);
  }
  // A cluster whose backends come from discovery may have none yet (or none left): it serves
  // no one until some appear, like a file cluster whose backends are all down.
  snapshot->may_be_empty = c.discovered;
  // Backends added once start-up is done ramp up (slow start): by a reload or a discovery update
  // (DNS, etcd), all of which publish through here; those ringlb starts with start at once.
  const uint64_t added_at = shared->ramp_new_backends.load(std::memory_order_relaxed) ? monotonic_ns() : 0;
  std::string error = balancer::finish_snapshot(snapshot.get(), &shared->backends, c.maglev_size, added_at);
  if (!error.empty()) return Status::error("cluster '" + c.name + "': " + error);
  *out = std::move(snapshot);
  return {};
}

// The registry index of cluster `name` (registered if new).
StatusOr<uint16_t> cluster_index(const std::string& name, SharedState* shared) {
  const int32_t index = shared->backends.intern_cluster(name);
  if (index < 0) {
    return Status::error("more than " + std::to_string(balancer::BackendRegistry::kMaxClusters) + " distinct clusters");
  }
  return static_cast<uint16_t>(index);
}

sources::SourceLimits source_limits(const ListenConfig& l) {
  sources::SourceLimits limits;
  limits.max_connections = l.max_connections_per_source;
  const SourceRate& rate = l.connection_rate_per_source;
  if (rate.count != 0) limits.interval_ns = to_ns(rate.per) / rate.count;  // at least 60 us
  limits.burst = l.connection_burst_per_source != 0 ? l.connection_burst_per_source : std::max(1u, rate.count);
  limits.capacity = l.source_table_size;
  return limits;
}

// The per-source table of listener `index` for `l`, made or reconfigured; null without limits.
sources::SharedSourceTable* source_table(const ListenConfig& l, size_t index, SharedState* shared) {
  std::unique_ptr<sources::SharedSourceTable>& table = shared->source_tables[index];
  if (!l.source_limited()) {
    if (table) table->set_enabled(false);
    return nullptr;
  }
  metrics::SourceTableStats* stats =
      shared->registry && index < shared->registry->source_tables.size() ? &shared->registry->source_tables[index] : nullptr;
  if (!table) {
    table = std::make_unique<sources::SharedSourceTable>(source_limits(l), stats);
  } else {
    table->configure(source_limits(l));
    table->set_enabled(true);
  }
  return table.get();
}

// The table that bounds listener `index`'s clients still in their handshake per source; null
// where nothing is inspected or there is no bound.
sources::SharedSourceTable* handshake_table(const ListenConfig& l, size_t index, SharedState* shared) {
  std::unique_ptr<sources::SharedSourceTable>& table = shared->handshake_tables[index];
  const bool inspects = l.accept_proxy || !l.sni_routes.empty() || l.tls.has_value();
  if (!inspects || l.max_handshakes_per_source == 0) return nullptr;
  sources::SourceLimits limits;
  limits.max_connections = l.max_handshakes_per_source;
  limits.capacity = l.source_table_size;
  if (!table) {
    table = std::make_unique<sources::SharedSourceTable>(limits, nullptr);
  } else {
    table->configure(limits);
  }
  return table.get();
}

bool same_routes(const ListenConfig& a, const ListenConfig& b) {
  if (a.cluster != b.cluster || a.sni_default != b.sni_default || a.sni_routes.size() != b.sni_routes.size()) {
    return false;
  }
  for (size_t i = 0; i < a.sni_routes.size(); ++i) {
    if (a.sni_routes[i].server_name != b.sni_routes[i].server_name ||
        a.sni_routes[i].cluster != b.sni_routes[i].cluster) {
      return false;
    }
  }
  return true;
}

}  // namespace

Status make_route(const ListenConfig& l, SharedState* shared, ListenerRoute* out) {
  ListenerRoute route;
  route.accept_proxy = l.accept_proxy;
  route.family = l.address.family();
  route.name = l.name;
  route.sni = !l.sni_routes.empty();
  route.tls = l.tls.has_value();
  if (!route.sni) {
    const StatusOr<uint16_t> index = cluster_index(l.cluster, shared);
    if (!index.ok()) return index.status();
    route.cluster = index.value();
  } else {
    size_t fallback = protocol::kNoCluster;
    if (!l.sni_default.empty()) {
      const StatusOr<uint16_t> index = cluster_index(l.sni_default, shared);
      if (!index.ok()) return index.status();
      fallback = index.value();
    }
    route.sni_routes = protocol::SniRoutes(fallback);
    for (const SniRoute& r : l.sni_routes) {
      const StatusOr<uint16_t> index = cluster_index(r.cluster, shared);
      if (!index.ok()) return index.status();
      if (std::string why = route.sni_routes.add(r.server_name, index.value()); !why.empty()) {
        return Status::error("listener '" + l.name + "': " + why);
      }
    }
  }
  *out = std::move(route);
  return {};
}

Status set_up_routes(const Config& config, SharedState* shared) {
  for (const ClusterConfig& c : config.clusters) {
    if (StatusOr<uint16_t> index = cluster_index(c.name, shared); !index.ok()) return index.status();
  }
  if (config.listen.size() > kMaxListeners) {
    return Status::error("more than " + std::to_string(kMaxListeners) + " listeners");
  }
  shared->listener_configs.clear();
  shared->listener_live.clear();
  for (size_t i = 0; i < config.listen.size(); ++i) {
    RINGLB_RETURN_IF_ERROR(make_route(config.listen[i], shared, &shared->routes[i]));
    shared->listener_configs.push_back(config.listen[i]);
    shared->listener_live.push_back(true);
  }
  return {};
}

bool same_listener(const ListenConfig& was, const ListenConfig& now) {
  return was.name == now.name && was.address.to_string() == now.address.to_string() &&
         was.v6only == now.v6only && was.accept_proxy == now.accept_proxy && same_routes(was, now) &&
         was.tls.has_value() == now.tls.has_value();
}

Status publish_clusters(const Config& config, uint64_t version, SharedState* shared,
                        std::vector<std::string>* changed) {
  // Everything is built first, so that a bad cluster publishes nothing.
  std::vector<std::shared_ptr<balancer::Snapshot>> built(config.clusters.size());
  std::vector<bool> present(balancer::BackendRegistry::kMaxClusters, false);
  for (size_t i = 0; i < config.clusters.size(); ++i) {
    const StatusOr<uint16_t> index = cluster_index(config.clusters[i].name, shared);
    if (!index.ok()) return index.status();
    present[index.value()] = true;
    RINGLB_RETURN_IF_ERROR(build_snapshot(config.clusters[i], index.value(), version, shared, &built[i]));
  }
  for (size_t i = 0; i < config.clusters.size(); ++i) {
    const balancer::Snapshot& s = *built[i];
    for (size_t b = 0; b < s.backends.size(); ++b) {
      // A new id's entry is written before the snapshot naming it is published. An id that is
      // live already has this very address (an id is its address as written): writing it again
      // would race with the workers reading it, so it is left alone.
      Address& entry = shared->backend_addresses[s.backends[b].id];
      const Address& address = config.clusters[i].backends[b].address;
      if (entry.length != address.length || memcmp(&entry.storage, &address.storage, address.length) != 0) {
        entry = address;
      }
      balancer::BackendState& state = *s.backends[b].state;
      // Back from drain or maintenance (`ctl enable`): it ramps like a backend just added, from
      // before the snapshot giving it its weight again is published. The previous publish's
      // admin state is still in `state` here.
      if (shared->ramp_new_backends.load(std::memory_order_relaxed) && s.backends[b].slow_start_ms != 0 && s.backends[b].admin == balancer::Admin::kEnabled &&
          state.admin.load(std::memory_order_relaxed) != static_cast<uint8_t>(balancer::Admin::kEnabled)) {
        state.ramp_from_ns.store(monotonic_ns(), std::memory_order_relaxed);
      }
      // Also where the snapshot is not published (the same): the values are the same then.
      state.weight.store(s.backends[b].weight, std::memory_order_relaxed);
      state.admin.store(static_cast<uint8_t>(s.backends[b].admin), std::memory_order_relaxed);
    }
    balancer::SnapshotHolder& holder = shared->clusters[s.cluster];
    const std::shared_ptr<const balancer::Snapshot> current = holder.get();
    if (current && balancer::same_snapshot(*current, s)) continue;
    holder.publish(built[i]);
    if (changed != nullptr) changed->push_back(config.clusters[i].name);
  }
  // A removed cluster gets an empty snapshot: its backends stop being checked, and connections
  // to them finish within the drain deadline.
  for (uint32_t c = 0; c < shared->backends.clusters(); ++c) {
    balancer::SnapshotHolder& holder = shared->clusters[c];
    const std::shared_ptr<const balancer::Snapshot> current = holder.get();
    if (present[c] || !current || current->retired) continue;
    auto retired = std::make_shared<balancer::Snapshot>();
    retired->version = version;
    retired->cluster = c;
    retired->retired = true;
    holder.publish(std::move(retired));
    if (changed != nullptr) changed->push_back(shared->backends.cluster_name(c) + " (removed)");
  }
  return {};
}

void publish_policies(const Config& config, uint64_t version, SharedState* shared,
                      const std::vector<uint16_t>* indexes, const TlsSets* tls) {
  auto policies = std::make_shared<ListenerPolicies>();
  policies->version = version;
  // Every index used so far has an entry: a removed listener's connections still look theirs up.
  // A removed one keeps its last settings (its timeouts still apply while it drains).
  policies->listeners.resize(std::max(shared->listener_live.size(), config.listen.size()));
  std::shared_ptr<const ListenerPolicies> running;
  {
    std::lock_guard<std::mutex> lock(shared->policies_mu);
    running = shared->policies;
  }
  for (size_t i = 0; i < policies->listeners.size(); ++i) {
    if (i >= shared->listener_live.size() || shared->listener_live[i]) continue;
    if (i < running->listeners.size()) policies->listeners[i] = running->listeners[i];
    policies->listeners[i].removed = true;
  }
  for (size_t i = 0; i < config.listen.size(); ++i) {
    const ListenConfig& l = config.listen[i];
    const size_t index = indexes != nullptr ? (*indexes)[i] : i;
    ListenerPolicy& p = policies->listeners[index];
    p.acl = Acl(l.allow, l.deny);
    // Meaningful only where a header is read: elsewhere the list is ignored.
    p.trusted = Acl(l.accept_proxy ? l.trusted_proxies : std::vector<Cidr>{}, {});
    p.max_connections = l.max_connections;
    // Nothing from here on fails: a config refused earlier has changed no table.
    p.sources = source_table(l, index, shared);
    p.source_ipv6_prefix = l.source_ipv6_prefix;
    p.max_handshakes = l.max_handshakes;
    p.handshakes = handshake_table(l, index, shared);
    p.idle_timeout = l.idle_timeout.value_or(config.idle_timeout);
    p.fin_timeout = l.fin_timeout.value_or(config.fin_timeout);
    p.max_connection_duration = l.max_connection_duration.value_or(config.max_connection_duration);
    p.proxy_header_timeout = l.proxy_header_timeout;
    p.tls_inspect_timeout = l.tls_inspect_timeout;
    p.tls = tls != nullptr ? tls->listeners[i] : nullptr;
    p.tls_handshake_timeout = l.tls ? l.tls->handshake_timeout : Millis{0};
    p.download_rate = l.download_rate;
    p.upload_rate = l.upload_rate;
    metrics::TlsStats* stats = shared->registry ? shared->registry->tls.get() : nullptr;
    if (stats != nullptr && p.tls) {
      std::vector<std::pair<std::string, int64_t>> expiries;
      for (const auto& e : p.tls->expiries()) expiries.emplace_back(e.name, e.not_after);
      stats->set_certificates(l.name, std::move(expiries));
    } else if (stats != nullptr) {
      stats->remove_listener(l.name);
    }
  }
  policies->cluster_tls.assign(balancer::BackendRegistry::kMaxClusters, nullptr);
  if (tls != nullptr) {
    for (const auto& [name, set] : tls->clusters) {
      const int32_t index = shared->backends.intern_cluster(name);  // registered by publish_clusters
      if (index >= 0) policies->cluster_tls[static_cast<size_t>(index)] = set;
    }
  }
  {
    std::lock_guard<std::mutex> lock(shared->policies_mu);
    shared->policies = std::move(policies);
  }
  shared->policies_version.store(version, std::memory_order_release);
}

Status publish_config(const Config& config, uint64_t version, SharedState* shared,
                      std::vector<std::string>* changed, const std::vector<uint16_t>* indexes) {
  TlsSets tls;
  RINGLB_RETURN_IF_ERROR(build_tls(config, *shared, indexes, &tls));
  RINGLB_RETURN_IF_ERROR(publish_clusters(config, version, shared, changed));
  publish_policies(config, version, shared, indexes, &tls);
  return {};
}

}  // namespace ringlb
