#include "server/discovery/dns_policy.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

namespace ringlb::discovery::dns {

const char* result_name(Result r) {
  switch (r) {
    case Result::kOk: return "ok";
    case Result::kNxdomain: return "nxdomain";
    case Result::kNodata: return "nodata";
    case Result::kServfail: return "servfail";
    case Result::kRefused: return "refused";
    case Result::kTimeout: return "timeout";
    case Result::kUnreachable: return "unreachable";
    case Result::kError: return "error";
  }
  return "error";
}

const char* state_name(NameState::State s) {
  switch (s) {
    case NameState::State::kPending: return "pending";
    case NameState::State::kValid: return "valid";
    case NameState::State::kHolding: return "holding";
    case NameState::State::kFailed: return "failed";
  }
  return "?";
}

Millis next_interval(uint32_t ttl_seconds, Millis min, Millis max) {
  return std::clamp(Millis{static_cast<int64_t>(ttl_seconds) * 1000}, min, std::max(min, max));
}

Millis retry_interval(unsigned failures, Millis min, Millis max) {
  const Millis cap = std::max(min, std::min(max, Millis{30000}));
  Millis d = min;
  for (unsigned i = 1; i < failures && d < cap; ++i) d *= 2;
  return std::min(d, cap);
}

bool Resolved::operator==(const Resolved& o) const {
  return address.length == o.address.length && memcmp(&address.storage, &o.address.storage, address.length) == 0 &&
         weight == o.weight && backup == o.backup;
}

void normalise(std::vector<Resolved>* set) {
  std::set<std::string> seen;
  std::vector<Resolved> out;
  for (Resolved& r : *set) {
    if (seen.insert(r.address.to_string()).second) out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(),
            [](const Resolved& a, const Resolved& b) { return a.address.to_string() < b.address.to_string(); });
  *set = std::move(out);
}

uint32_t srv_weight(uint16_t weight, uint16_t max) {
  if (max == 0 || weight == 0) return 1;
  const uint64_t scaled = (uint64_t{weight} * limits::kMaxWeight + max / 2) / max;
  return static_cast<uint32_t>(std::clamp<uint64_t>(scaled, 1, limits::kMaxWeight));
}

std::vector<Resolved> from_srv(const std::vector<SrvRecord>& records,
                               const std::map<std::string, std::vector<Address>>& targets) {
  if (records.empty()) return {};
  std::vector<SrvRecord> sorted = records;
  // Lowest priority first, so that an address listed at two priorities counts at the better one.
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const SrvRecord& a, const SrvRecord& b) { return a.priority < b.priority; });
  std::map<uint16_t, uint16_t> max_weight;  // by priority
  for (const SrvRecord& r : sorted) max_weight[r.priority] = std::max(max_weight[r.priority], r.weight);
  const uint16_t primary = sorted.front().priority;
  std::vector<Resolved> out;
  for (const SrvRecord& r : sorted) {
    auto it = targets.find(r.target);
    if (it == targets.end()) continue;
    for (Address a : it->second) {
      a.set_port(r.port);
      out.push_back(Resolved{a, srv_weight(r.weight, max_weight[r.priority]), r.priority != primary});
    }
  }
  normalise(&out);
  return out;
}

std::vector<BackendConfig> backends_for(const BackendConfig& entry, const std::vector<Resolved>& set) {
  std::vector<BackendConfig> out;
  const bool srv = entry.dns.kind == DnsName::Kind::kSrv;
  for (const Resolved& r : set) {
    BackendConfig b = entry;
    b.dns = DnsName{};
    b.address = r.address;
    b.text = r.address.to_string();
    if (srv) {
      b.weight = r.weight;
      b.backup = entry.backup || r.backup;
    }
    out.push_back(std::move(b));
  }
  return out;
}

namespace {

// Skips a (possibly compressed) name at *at; false when it runs past the end.
bool skip_name(const unsigned char* m, size_t len, size_t* at) {
  for (int labels = 0; labels < 128; ++labels) {
    if (*at >= len) return false;
    const unsigned char n = m[*at];
    if ((n & 0xc0) == 0xc0) {  // a pointer ends the name
      *at += 2;
      return *at <= len;
    }
    if (n == 0) {
      *at += 1;
      return true;
    }
    if ((n & 0xc0) != 0) return false;
    *at += 1 + n;
  }
  return false;
}

uint16_t u16(const unsigned char* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

}  // namespace

std::optional<uint32_t> min_answer_ttl(const unsigned char* m, size_t len, uint16_t type) {
  if (len < 12) return std::nullopt;
  const unsigned questions = u16(m + 4), answers = u16(m + 6);
  size_t at = 12;
  for (unsigned i = 0; i < questions; ++i) {
    if (!skip_name(m, len, &at) || at + 4 > len) return std::nullopt;
    at += 4;
  }
  std::optional<uint32_t> ttl;
  for (unsigned i = 0; i < answers; ++i) {
    if (!skip_name(m, len, &at) || at + 10 > len) return std::nullopt;
    const uint16_t rtype = u16(m + at);
    const uint32_t rttl = static_cast<uint32_t>(u16(m + at + 4)) << 16 | u16(m + at + 6);
    const uint16_t rdlength = u16(m + at + 8);
    at += 10;
    if (at + rdlength > len) return std::nullopt;
    at += rdlength;
    // RFC 2181: a TTL with the top bit set is read as 0.
    if (rtype == type) ttl = std::min(ttl.value_or(UINT32_MAX), rttl > INT32_MAX ? 0 : rttl);
  }
  return ttl;
}

NameState::Step NameState::succeeded(Nanos, std::vector<Resolved> set) {
  normalise(&set);
  const State from = state_;
  const bool changed = set != served_;
  served_ = std::move(set);
  state_ = State::kValid;
  failures_ = 0;
  return {from, state_, changed};
}

NameState::Step NameState::failed(Nanos now, Result why) {
  const State from = state_;
  last_failure_ = why;
  if (failures_++ == 0) failing_since_ = now;
  if (state_ == State::kValid) state_ = State::kHolding;
  if (state_ == State::kPending) state_ = State::kFailed;
  if (state_ == State::kHolding && now - failing_since_ >= hold_ns_) {
    Step step = expire(now);
    step.from = from;
    return step;
  }
  return {from, state_, false};
}

NameState::Step NameState::expire(Nanos now) {
  const State from = state_;
  if (state_ != State::kHolding || now - failing_since_ < hold_ns_) return {from, state_, false};
  served_.clear();
  state_ = State::kFailed;
  return {from, state_, true};
}

std::optional<Nanos> NameState::hold_deadline() const {
  if (state_ != State::kHolding) return std::nullopt;
  return failing_since_ + hold_ns_;
}

}  // namespace ringlb::discovery::dns
