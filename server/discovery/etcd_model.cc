#include "server/discovery/etcd_model.h"

#include <set>

#include <nlohmann/json.hpp>

namespace ringlb::discovery::etcd {

using nlohmann::json;

bool parse_backend_value(std::string_view text, BackendConfig* out, std::string* why) {
  const json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    *why = "not a JSON object";
    return false;
  }
  BackendConfig b;
  bool have_address = false, drain = false;
  for (const auto& [name, v] : j.items()) {
    auto uint_field = [&](uint64_t max, uint32_t* field) {
      if (!v.is_number_unsigned() || v.get<uint64_t>() > max) {
        *why = name + ": expected a whole number from 0 to " + std::to_string(max);
        return false;
      }
      *field = static_cast<uint32_t>(v.get<uint64_t>());
      return true;
    };
    auto bool_field = [&](bool* field) {
      if (!v.is_boolean()) {
        *why = name + ": expected true or false";
        return false;
      }
      *field = v.get<bool>();
      return true;
    };
    if (name == "address") {
      // Only an address: settings are fields of their own here, not ",weight=2" suffixes.
      Status parsed = Status::error("expected ADDR:PORT");
      if (v.is_string() && v.get<std::string>().find(',') == std::string::npos) {
        parsed = parse_backend(v.get<std::string>(), &b);
      }
      if (!parsed.ok()) {
        *why = "address: " + (v.is_string() ? parsed.message() : std::string("expected a string"));
        return false;
      }
      have_address = true;
    } else if (name == "weight") {
      if (!uint_field(limits::kMaxWeight, &b.weight)) return false;
    } else if (name == "max-connections") {
      if (!uint_field(limits::kMaxConnections, &b.max_connections)) return false;
    } else if (name == "backup") {
      if (!bool_field(&b.backup)) return false;
    } else if (name == "drain") {
      if (!bool_field(&drain)) return false;
    } else {
      *why = "unknown field '" + name + "' (address, weight, backup, max-connections, drain)";
      return false;
    }
  }
  if (!have_address) {
    *why = "address is required";
    return false;
  }
  if (drain) b.weight = 0;
  b.text = b.address.to_string();
  *out = std::move(b);
  return true;
}

void PrefixMap::put(const KeyValue& kv, std::vector<Bad>* bad) {
  Entry e;
  std::string why;
  e.ok = parse_backend_value(kv.value, &e.backend, &why);
  if (!e.ok) bad->push_back({kv.key, why});
  entries_[kv.key] = std::move(e);
}

void PrefixMap::reset(const std::vector<KeyValue>& kvs, int64_t revision, std::vector<Bad>* bad) {
  entries_.clear();
  for (const KeyValue& kv : kvs) put(kv, bad);
  revision_ = revision;
}

void PrefixMap::apply(const std::vector<WatchEvent>& events, std::vector<Bad>* bad) {
  for (const WatchEvent& e : events) {
    if (e.kv.mod_revision != 0 && e.kv.mod_revision <= revision_) continue;
    if (e.type == WatchEvent::Type::kPut) {
      put(e.kv, bad);
    } else {
      entries_.erase(e.kv.key);
    }
    if (e.kv.mod_revision > revision_) revision_ = e.kv.mod_revision;
  }
}

std::vector<BackendConfig> PrefixMap::backends() const {
  std::vector<BackendConfig> out;
  std::set<std::string> seen;
  for (const auto& [key, e] : entries_) {
    if (e.ok && seen.insert(e.backend.text).second) out.push_back(e.backend);
  }
  return out;
}

Millis Backoff::next() {
  const unsigned shift = attempts_ < 30 ? attempts_ : 30;
  ++attempts_;
  const int64_t cap = max_.count();
  const int64_t d = min_.count() << shift > cap || (min_.count() << shift) <= 0 ? cap : min_.count() << shift;
  state_ ^= state_ << 13;
  state_ ^= state_ >> 7;
  state_ ^= state_ << 17;
  const int64_t half = d / 2;
  return Millis(half + static_cast<int64_t>(state_ % static_cast<uint64_t>(d - half + 1)));
}

}  // namespace ringlb::discovery::etcd
