// Picks a backend for a new connection under a snapshot's policy. One Picker per worker and
// snapshot; not thread-safe, no locks: shared state is read with relaxed atomic loads.
#pragma once

#include <cstdint>
#include <vector>

#include "balancer/smooth_round_robin.h"
#include "balancer/snapshot.h"

namespace ringlb::balancer {

class Picker {
 public:
  // `phase` staggers round robin between workers; `seed` seeds random2's generator.
  Picker(const Snapshot& snapshot, unsigned phase, uint64_t seed);

  // Index into snapshot.backends, or -1 when no backend can take the connection. `key_hash`
  // is the client's hash (Maglev); `tried` has bit i set for backends this client already tried
  // (backends past the 64th are never excluded). Backups are used only when no primary can be.
  // Under slow start (balancer/slow_start.h) a ramping backend counts with its effective
  // weight: round robin and leastconn by that weight, random2's draws by it, and Maglev sends
  // a stable part of its keys to it (the rest take their next entry, the fallback order).
  int pick(uint64_t key_hash, uint64_t tried);

  // Whether pick() would find a backend now (and so, with no side effects, whether a queued
  // client may go).
  bool can_take(uint64_t tried) const;
  // Some backend not yet tried is up, full or not: when pick() found none with room (they are at
  // their max-connections, or one was freed by another worker a moment later), waiting in a
  // queue may help (HAProxy's maxconn queue). False when they are down or there are none.
  bool waiting_helps(uint64_t tried) const;

  const Snapshot& snapshot() const { return snapshot_; }

 private:
  bool eligible(size_t i, uint64_t tried, bool backup) const;
  // Eligible but for max-connections.
  bool eligible_if_not_full(size_t i, uint64_t tried, bool backup) const;
  // Whether `test` holds for some backend, primary or backup.
  using Test = bool (Picker::*)(size_t i, uint64_t tried, bool backup) const;
  bool any(uint64_t tried, Test test) const;
  int pick_tier(uint64_t key_hash, uint64_t tried, bool backup);
  int least_loaded(uint64_t tried, bool backup);
  int round_robin(uint64_t tried, bool backup);
  int random_two(uint64_t tried, bool backup);
  int maglev(uint64_t key_hash, uint64_t tried, bool backup);
  uint64_t next_random();
  // Slow start: whether some backend ramps now (read once per pick), and each one's share.
  void refresh_ramp();
  uint64_t factor(size_t i) const;  // kRampScale unless ramping
  uint64_t weight_of(size_t i) const { return snapshot_.backends[i].weight * factor(i); }
  // Smooth weighted round robin over the effective weights, while some backend ramps (the
  // precomputed schedule holds the full weights).
  int ramp_round_robin(uint64_t tried, bool backup);

  const Snapshot& snapshot_;
  SmoothRoundRobin round_robin_;
  // One full period of the smooth weighted sequence (total weight entries), precomputed so that a
  // pick is one lookup; empty when the period is too long to keep (then round_robin_ runs live).
  std::vector<uint32_t> schedule_;
  size_t schedule_pos_ = 0;
  std::vector<uint64_t> weight_prefix_;  // running sum of weights, for weighted random draws
  uint64_t rng_;
  size_t cursor_ = 0;  // where leastconn starts looking, so that ties go in turn
  bool has_slow_start_ = false;  // some backend has slow-start: each pick reads the clock
  bool ramping_ = false;
  uint64_t now_ns_ = 0;
  std::vector<int64_t> ramp_current_;
};

}  // namespace ringlb::balancer
