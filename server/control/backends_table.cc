#include "server/control/backends_table.h"

#include <algorithm>
#include <map>

#include "balancer/slow_start.h"
#include "server/base/clock.h"
#include "server/discovery/cluster_publisher.h"
#include "server/health/check_spec.h"

namespace ringlb::control {
namespace {

struct Column {
  const char* header;
  std::string (*cell)(const BackendStatus&);
};

// One entry per field; their order is the table's.
const Column kColumns[] = {
    {"CLUSTER", [](const BackendStatus& s) { return s.cluster; }},
    {"BACKEND", [](const BackendStatus& s) { return s.backend; }},
    {"STATE", state_text},
    {"WEIGHT", weight_text},
    {"ACTIVE", [](const BackendStatus& s) { return s.active ? std::to_string(*s.active) : std::string("-"); }},
    {"ORIGIN", [](const BackendStatus& s) { return s.origin; }},
    {"CHECK", [](const BackendStatus& s) { return s.check; }},
    {"LAST-FAILURE", [](const BackendStatus& s) {
       return s.last_failure.empty() ? std::string("-") : health::printable(s.last_failure, 256);
     }},
};

// The share of its weight a backend gets now, in percent, while a slow-start ramp runs.
std::optional<uint32_t> ramp_percent(const balancer::BackendSpec& b, uint64_t now_ns) {
  const uint64_t from = b.state->ramp_from_ns.load(std::memory_order_relaxed);
  if (from == 0 || b.slow_start_ms == 0 || now_ns < from) return std::nullopt;
  const uint64_t factor = balancer::slow_start_factor(now_ns - from, b.slow_start_ms * 1'000'000ULL);
  if (factor >= balancer::kRampScale) return std::nullopt;
  return static_cast<uint32_t>(factor * 100 / balancer::kRampScale);
}

}  // namespace

std::string state_text(const BackendStatus& s) {
  switch (s.admin) {
    case balancer::Admin::kDisabled:
      return "maint";  // not checked: its health says nothing
    case balancer::Admin::kDrain:
      return s.up ? "drain" : "drain (down)";
    case balancer::Admin::kEnabled:
      break;
  }
  if (!s.up) return "down";
  return s.ramp_percent ? "up (ramp " + std::to_string(*s.ramp_percent) + "%)" : "up";
}

std::string weight_text(const BackendStatus& s) {
  std::string out = std::to_string(s.weight);
  if (s.admin != balancer::Admin::kEnabled && s.runtime_weight) {
    return out + " (set " + std::to_string(*s.runtime_weight) + ", configured " +
           std::to_string(s.configured_weight) + ")";
  }
  if (s.weight != s.configured_weight || s.runtime_weight) {
    out += " (configured " + std::to_string(s.configured_weight) + ")";
  }
  return out;
}

std::vector<BackendStatus> backend_statuses(SharedState& shared) {
  // Live state by (cluster, backend), from the published snapshots: they hold the ids.
  std::map<std::pair<std::string, std::string>, const balancer::BackendSpec*> live;
  const uint64_t now = monotonic_ns();
  std::vector<std::shared_ptr<const balancer::Snapshot>> pinned;  // keeps the states' ids live
  for (uint32_t c = 0; c < shared.backends.clusters(); ++c) {
    std::shared_ptr<const balancer::Snapshot> s = shared.clusters[c].get();
    if (!s) continue;
    for (const balancer::BackendSpec& b : s->backends) live[{shared.backends.cluster_name(c), b.name}] = &b;
    pinned.push_back(std::move(s));
  }
  std::vector<BackendStatus> out;
  for (const discovery::BackendView& v : shared.publisher->backends()) {
    BackendStatus s;
    s.cluster = v.cluster;
    s.backend = v.name;
    s.admin = v.admin;
    s.weight = v.weight;
    s.configured_weight = v.configured_weight;
    s.runtime_weight = v.runtime_weight;
    s.origin = v.origin;
    if (auto it = live.find({v.cluster, v.name}); it != live.end()) {
      const balancer::BackendSpec& b = *it->second;
      s.up = b.state->up.load(std::memory_order_relaxed) != 0;
      s.active = b.state->active.load(std::memory_order_relaxed);
      s.check = b.check_interval_ms == 0 ? "none" : b.check ? health::check_type_name(b.check->type) : "tcp";
      s.ramp_percent = ramp_percent(b, now);
      s.id = b.id;
      std::lock_guard<std::mutex> lock(shared.check_failures_mu);
      s.last_failure = shared.last_check_failure[b.id];
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string format_backends(const std::vector<BackendStatus>& rows) {
  constexpr size_t kCount = sizeof(kColumns) / sizeof(kColumns[0]);
  std::vector<std::vector<std::string>> cells(rows.size() + 1);
  size_t widths[kCount] = {};
  for (size_t c = 0; c < kCount; ++c) cells[0].push_back(kColumns[c].header);
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t c = 0; c < kCount; ++c) cells[r + 1].push_back(kColumns[c].cell(rows[r]));
  }
  for (const auto& line : cells) {
    for (size_t c = 0; c < kCount; ++c) widths[c] = std::max(widths[c], line[c].size());
  }
  std::string out;
  for (const auto& line : cells) {
    std::string text;
    for (size_t c = 0; c < kCount; ++c) {
      text += line[c];
      if (c + 1 < kCount) text += std::string(widths[c] - line[c].size() + 2, ' ');
    }
    out += text + "\n";
  }
  return out;
}

}  // namespace ringlb::control
