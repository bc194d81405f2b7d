#include "server/config/settings.h"

#include <algorithm>
#include <thread>

#include "server/config/settings_table.h"
#include "server/config/udp_config.h"
#include "server/protocol/quic.h"

namespace ringlb {
namespace {

using settings_table::Entry;
using settings_table::Level;

bool in_scope(Level level, Scope scope) {
  switch (scope) {
    case Scope::kTop:
      return level == Level::kGlobal || level == Level::kCluster || level == Level::kListenerDefault;
    case Scope::kCluster:
      return level == Level::kCluster || level == Level::kClusterOnly;
    case Scope::kListener:
      return level == Level::kListenerDefault || level == Level::kListener;
    case Scope::kBackend:
      return level == Level::kBackend;
    case Scope::kEtcd:
      return level == Level::kEtcd;
    case Scope::kResolvers:
      return level == Level::kResolvers;
  }
  return false;
}

const Entry* find(Scope scope, std::string_view key) {
  for (const Entry& e : settings_table::entries()) {
    if (in_scope(e.level, scope) && (key == e.name || (e.alias != nullptr && key == e.alias))) return &e;
  }
  return nullptr;
}

}  // namespace

Status FlagValue::get_uint(uint64_t min, uint64_t max, uint64_t* out) const {
  if (!parse_uint(text(), min, max, out)) {
    return Status::error("expected a whole number from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return {};
}

Status FlagValue::get_bool(bool* out) const {
  if (text() != "true" && text() != "false") return Status::error("expected true or false");
  *out = text() == "true";
  return {};
}

Status FlagValue::get_string(std::string* out, const char*) const {
  *out = text();
  return {};
}

Status FlagValue::get_strings(std::vector<std::string>* out) const {
  *out = texts_;
  return {};
}

Defaults make_defaults() {
  Defaults d;
  d.config.workers = std::max(1u, std::thread::hardware_concurrency());
  std::string unused;
  parse_address("127.0.0.1:9090", &d.config.metrics_listen, &unused);
  return d;
}

const char* canonical_key(Scope scope, std::string_view key) {
  const Entry* e = find(scope, key);
  return e != nullptr ? e->name : nullptr;
}

std::vector<std::string> keys_of(Scope scope) {
  std::vector<std::string> keys;
  for (const Entry& e : settings_table::entries()) {
    if (in_scope(e.level, scope)) keys.push_back(e.name);
  }
  return keys;
}

Status apply_setting(Scope scope, std::string_view key, const Value& value, const Target& target) {
  const Entry* e = find(scope, key);
  if (e == nullptr) return Status::error("unknown key");
  Target t = target;
  if (scope == Scope::kTop || scope == Scope::kResolvers) {
    t.cluster = &target.top->cluster;
    t.listener = &target.top->listener;
  }
  RINGLB_RETURN_IF_ERROR(e->apply(value, t));
  if (scope == Scope::kTop && std::string_view(e->name) == "queue-timeout") {
    target.top->queue_timeout_set = true;
  }
  return {};
}

std::vector<Problem> check_cluster(const ClusterConfig& c) {
  std::vector<Problem> problems;
  if (c.policy == balancer::Policy::kMaglev && !balancer::is_prime(c.maglev_size)) {
    problems.push_back({-1, "maglev-table-size", std::to_string(c.maglev_size), "must be prime (65537 is)"});
  }
  if (c.resolve_min_interval > c.resolve_max_interval) {
    problems.push_back({-1, "resolve-max-interval", std::to_string(c.resolve_max_interval.count()) + "ms",
                        "must not be below resolve-min-interval (" +
                            std::to_string(c.resolve_min_interval.count()) + "ms)"});
  }
  for (const auto& [i, why] : check_server_ids(c)) {
    problems.push_back({static_cast<int>(i), "quic-server-id", quic::format_server_id(c.backends[i].quic_server_id), why});
  }
  for (size_t i = 0; i < c.backends.size(); ++i) {
    const BackendConfig& b = c.backends[i];
    // The check as this backend runs it; blamed on the backend if it set any check key.
    const health::CheckSettings own = b.check;
    const bool overrides = own.type || own.port || own.method || own.path || own.host || own.body ||
                           own.send || own.expect || own.sni || own.status || own.expect_within;
    if (auto p = health::validate(c.health.check.overlaid(own).resolve())) {
      const int at = overrides ? static_cast<int>(i) : -1;
      const bool seen = std::any_of(problems.begin(), problems.end(),
                                    [&](const Problem& q) { return q.backend == at && std::string_view(q.key) == p->key; });
      if (!seen) problems.push_back({at, p->key, p->value.empty() ? "(unset)" : "\"" + p->value + "\"", p->why});
    }
  }
  return problems;
}

}  // namespace ringlb
