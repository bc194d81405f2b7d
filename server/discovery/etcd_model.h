// The pure parts of etcd discovery: one key's value as a backend, the key -> backend map of a
// prefix that a range fills and watch events change, and the reconnect backoff. No network and
// no threads (unit-tested on their own); etcd_discovery.h drives them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "server/config/config.h"
#include "server/discovery/etcd_protocol.h"

namespace ringlb::discovery::etcd {

// A key's value: {"address": "10.0.0.5:80", "weight": 2, "backup": false, "max-connections": 100,
// "drain": false}. `address` is required (IPv4 or [IPv6] with a port); weight 0 to 1000 (default
// 1); drain = true is weight 0 (kept, checked, no new clients). An unknown field is refused, as in
// the file: a misspelt "wieght" must not pass as weight 1. The backend's text (its identity) is
// the address alone, so a weight change keeps its id, connections and health state.
bool parse_backend_value(std::string_view json, BackendConfig* out, std::string* why);

// A prefix's keys as etcd has them, and the backends they give.
class PrefixMap {
 public:
  // What changing the map did: bad values met (each is skipped, and counted once per read).
  struct Bad {
    std::string key;
    std::string why;
  };

  // A range answer replaces everything (a first sync, or a resync after compaction).
  void reset(const std::vector<KeyValue>& kvs, int64_t revision, std::vector<Bad>* bad);
  // One watch message's events, in order. Events at or below the map's revision are old news
  // (a watch resumed from an earlier point) and ignored.
  void apply(const std::vector<WatchEvent>& events, std::vector<Bad>* bad);

  // Every good backend in key order, so that every node builds the same list; an address
  // under two keys is kept once (the first key's).
  std::vector<BackendConfig> backends() const;
  // The last revision seen: a resumed watch starts at revision() + 1.
  int64_t revision() const { return revision_; }
  size_t keys() const { return entries_.size(); }

 private:
  struct Entry {
    bool ok = false;
    BackendConfig backend;
  };
  void put(const KeyValue& kv, std::vector<Bad>* bad);

  std::map<std::string, Entry> entries_;  // by key: malformed ones kept (not ok), to replace
  int64_t revision_ = 0;
};

// Exponential backoff with jitter, min doubling to max: the n-th delay is drawn from
// [d/2, d] where d = min(max, min * 2^n), so a fleet that lost etcd at once does not come back
// at once either. reset() after a success.
class Backoff {
 public:
  Backoff(Millis min, Millis max, uint64_t seed = 0x9e3779b97f4a7c15ULL)
      : min_(min), max_(max), state_(seed | 1) {}
  Millis next();
  void reset() { attempts_ = 0; }
  unsigned attempts() const { return attempts_; }

 private:
  Millis min_, max_;
  uint64_t state_;  // xorshift64: no <random> engine state to carry for a few draws a second
  unsigned attempts_ = 0;
};

}  // namespace ringlb::discovery::etcd
