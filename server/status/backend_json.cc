#include "server/status/backend_json.h"

#include "server/health/check_spec.h"

namespace ringlb::status {
namespace {

Json optional_number(const std::optional<uint32_t>& v) { return v ? Json(*v) : Json(nullptr); }

}  // namespace

const char* state_name(const control::BackendStatus& s) {
  switch (s.admin) {
    case balancer::Admin::kDisabled: return "disabled";
    case balancer::Admin::kDrain: return "draining";
    case balancer::Admin::kEnabled: break;
  }
  if (!s.up) return "down";
  return s.ramp_percent ? "slow-start" : "up";
}

bool healthy(const control::BackendStatus& s) { return s.admin == balancer::Admin::kEnabled && s.up; }

Json backend_json(const control::BackendStatus& s, const SharedState& shared) {
  Json b;
  b["cluster"] = s.cluster;
  b["name"] = s.backend;
  b["address"] = s.id ? Json(shared.backend_addresses[*s.id].to_string()) : Json(nullptr);
  b["state"] = state_name(s);
  b["state_text"] = control::state_text(s);
  b["healthy"] = healthy(s);
  b["up"] = s.up;
  b["admin"] = s.admin == balancer::Admin::kEnabled ? "enabled" : s.admin == balancer::Admin::kDrain ? "drain" : "maint";
  b["weight"] = s.weight;
  b["configured_weight"] = s.configured_weight;
  b["runtime_weight"] = optional_number(s.runtime_weight);
  b["ramp_percent"] = optional_number(s.ramp_percent);
  b["origin"] = s.origin;
  uint64_t attempts = 0, failures = 0, sent = 0, received = 0;
  const metrics::HealthCheckStats* checks = nullptr;
  if (s.id && shared.registry) {
    for (const auto& w : shared.registry->workers) {
      const metrics::BackendStats& st = w->backends[*s.id];
      attempts += st.connect_attempts.get();
      failures += st.connect_failures.get();
      sent += st.bytes_to_backend.get();
      received += st.bytes_from_backend.get();
    }
    checks = &shared.registry->checks[*s.id];
  }
  b["connections_active"] = s.active ? Json(*s.active) : Json(nullptr);
  // Connects that did not fail: the connections it was given (a connect in flight counts).
  b["connections_total"] = attempts >= failures ? attempts - failures : 0;
  b["connect_attempts"] = attempts;
  b["connect_failures"] = failures;
  b["bytes_sent"] = sent;          // from clients to the backend
  b["bytes_received"] = received;  // from the backend to clients
  Json check;
  check["type"] = s.check;
  const uint8_t last = checks ? checks->last_result.load(std::memory_order_relaxed) : metrics::HealthCheckStats::kNoResult;
  const bool checked = last < metrics::HealthCheckStats::kNoResult;
  check["last_result"] = checked ? Json(health::result_name(static_cast<health::Result>(last))) : Json(nullptr);
  check["last_unix_ms"] = checked ? Json(checks->last_unix_ms.load(std::memory_order_relaxed)) : Json(nullptr);
  const std::string failure = s.last_failure.empty() ? "" : health::printable(s.last_failure, 256);
  // Why the last check failed, when it did; last_failure stays after the backend recovers.
  check["reason"] = checked && last != static_cast<uint8_t>(health::Result::k_ok) && !failure.empty() ? Json(failure) : Json(nullptr);
  check["last_failure"] = failure.empty() ? Json(nullptr) : Json(failure);
  uint64_t total = 0, failed = 0;
  if (checks) {
    for (size_t i = 0; i < checks->results.size(); ++i) {
      total += checks->results[i].get();
      if (i != static_cast<size_t>(health::Result::k_ok)) failed += checks->results[i].get();
    }
  }
  check["checks_total"] = total;
  check["failures_total"] = failed;
  b["check"] = std::move(check);
  return b;
}

Json backends_json(SharedState& shared) {
  Json list = Json::array();
  for (const control::BackendStatus& s : control::backend_statuses(shared)) list.push_back(backend_json(s, shared));
  Json out;
  out["backends"] = std::move(list);
  return out;
}

}  // namespace ringlb::status
