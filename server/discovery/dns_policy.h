// The pure parts of DNS discovery, apart from sockets and c-ares so that they are unit-tested
// with an injected clock: when a name is looked up again, what a failed lookup does to the set
// it serves (HAProxy's `hold valid`), how SRV weights and priorities become ringlb's weights and
// backups, and the backends an entry gives for its addresses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "server/base/address.h"
#include "server/config/config.h"

namespace ringlb::discovery::dns {

// Nanoseconds of a monotonic clock (server/clock.h in the resolver, any number in tests).
using Nanos = uint64_t;

// How one lookup ended (the `result` label of ringlb_dns_resolutions_total).
enum class Result : uint8_t { kOk, kNxdomain, kNodata, kServfail, kRefused, kTimeout, kUnreachable, kError };
const char* result_name(Result r);

// When a name that answered with records of `ttl_seconds` is looked up again: at the TTL,
// within [min, max].
Millis next_interval(uint32_t ttl_seconds, Millis min, Millis max);
// When a name whose last `failures` (1 or more) lookups failed is tried again: min, doubled per
// failure, at most max and at most 30 s (so a name comes back soon after its server does).
Millis retry_interval(unsigned failures, Millis min, Millis max);

// One address a name gave. `weight`/`backup` come from SRV records; for HOST:PORT the entry's.
struct Resolved {
  Address address;
  uint32_t weight = 1;
  bool backup = false;
  bool operator==(const Resolved& o) const;
};
// Sorted by address, duplicates (the same IP:PORT twice) dropped, the first kept.
void normalise(std::vector<Resolved>* set);

struct SrvRecord {
  uint16_t priority = 0;
  uint16_t weight = 0;
  uint16_t port = 0;
  std::string target;
};

// ringlb's weight (1 to limits::kMaxWeight) for an SRV weight, `max` being the largest weight
// of its priority level: scaled so that the largest is 1000. A weight of 0 among others becomes
// 1, RFC 2782's "very small chance"; a level of only zeros gets 1 each (an even split).
uint32_t srv_weight(uint16_t weight, uint16_t max);

// The addresses of SRV records, given each target's addresses (targets absent give nothing):
// records of the lowest priority value are the primaries, every other is a backup; each address
// of a target gets its record's port and weight. Normalised.
std::vector<Resolved> from_srv(const std::vector<SrvRecord>& records,
                               const std::map<std::string, std::vector<Address>>& targets);

// The backends `entry` (a name, with the settings written on it) gives for `set`: each with the
// entry's settings, its address, "IP:PORT" as text, and for srv: entries the SRV weight and
// backup (or backup if the entry says so).
std::vector<BackendConfig> backends_for(const BackendConfig& entry, const std::vector<Resolved>& set);

// The smallest TTL of the answer records of `type` in a DNS response (c-ares parses SRV records
// but drops their TTL); nullopt when the message is malformed or has no such answer.
std::optional<uint32_t> min_answer_ttl(const unsigned char* message, size_t length, uint16_t type);

// What one name serves as its lookups succeed and fail. A failure keeps the last good set for
// `hold` after the first failure of a run of them, then withdraws it; a success serves its set.
class NameState {
 public:
  enum class State : uint8_t {
    kPending,  // not answered yet: nothing served
    kValid,    // the last lookup succeeded: its set is served
    kHolding,  // failing since hold_start(); the last good set is still served
    kFailed,   // failing, nothing served (held for `hold`, or never answered)
  };
  // What a call did: the state before and after, and whether served() changed (publish it).
  struct Step {
    State from, to;
    bool set_changed;
  };

  explicit NameState(Millis hold) : hold_ns_(to_ns(hold)) {}
  Step succeeded(Nanos now, std::vector<Resolved> set);
  Step failed(Nanos now, Result why);
  // Withdraws a held set whose hold is over (call at hold_deadline()).
  Step expire(Nanos now);
  void set_hold(Millis hold) { hold_ns_ = to_ns(hold); }

  State state() const { return state_; }
  const std::vector<Resolved>& served() const { return served_; }
  // While kHolding: when the held set is withdrawn.
  std::optional<Nanos> hold_deadline() const;
  Result last_failure() const { return last_failure_; }
  unsigned failures() const { return failures_; }  // in a row

 private:
  Nanos hold_ns_;
  State state_ = State::kPending;
  std::vector<Resolved> served_;
  Nanos failing_since_ = 0;
  unsigned failures_ = 0;
  Result last_failure_ = Result::kOk;
};
const char* state_name(NameState::State s);

}  // namespace ringlb::discovery::dns
