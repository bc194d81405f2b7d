#include "server/limits/source_table.h"

#include <algorithm>
#include <cstring>

namespace ringlb::sources {

SourceKey source_key(const sockaddr* addr, unsigned v6_prefix) {
  SourceKey key;
  if (addr->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(addr);
    key.hi = 0;
    key.lo = (0xffffULL << 32) | ntohl(v4->sin_addr.s_addr);
  } else if (addr->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(addr);
    const uint8_t* b = v6->sin6_addr.s6_addr;
    for (int i = 0; i < 8; ++i) key.hi = key.hi << 8 | b[i];
    for (int i = 8; i < 16; ++i) key.lo = key.lo << 8 | b[i];
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr) || v6_prefix >= 128) return key;
    if (v6_prefix <= 64) {
      key.lo = 0;
      key.hi = v6_prefix == 0 ? 0 : key.hi & (~0ULL << (64 - v6_prefix));
    } else {
      key.lo &= ~0ULL << (128 - v6_prefix);
    }
  }
  return key;
}

size_t SourceKeyHash::operator()(const SourceKey& k) const {
  // splitmix64's finaliser over both words: clients pick their addresses, so the low bits of a
  // plain xor would let a /24 crowd one bucket less evenly than this.
  uint64_t x = k.hi * 0x9e3779b97f4a7c15ULL ^ k.lo;
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return static_cast<size_t>(x);
}

void SourceTable::configure(const SourceLimits& limits) {
  limits_ = limits;
  evict_idle_above(limits_.capacity);
}

void SourceTable::evict_idle_above(size_t size) {
  while (index_.size() > size && !idle_.empty()) {
    index_.erase(idle_.back().key);
    idle_.pop_back();
    ++evictions_;
  }
}

Admission SourceTable::acquire(const SourceKey& key, uint64_t now_ns) {
  auto found = index_.find(key);
  List::iterator it;
  if (found == index_.end()) {
    if (index_.size() >= limits_.capacity) {
      if (idle_.empty()) return Admission::kTableFull;
      evict_idle_above(limits_.capacity - 1);
      if (index_.size() >= limits_.capacity) return Admission::kTableFull;
    }
    idle_.push_front(Entry{key, 0, 0});
    it = idle_.begin();
    index_.emplace(key, it);
  } else {
    it = found->second;
    if (it->live == 0) idle_.splice(idle_.begin(), idle_, it);  // most recently seen
  }
  Entry& e = *it;
  if (limits_.max_connections != 0 && e.live >= limits_.max_connections) return Admission::kTooMany;
  if (limits_.interval_ns != 0) {
    // Admitted while tat is at most burst-1 intervals ahead: a full bucket takes `burst` at once.
    const uint64_t tat = std::max(e.tat_ns, now_ns);
    const uint64_t slack = static_cast<uint64_t>(std::max<uint32_t>(limits_.burst, 1) - 1) * limits_.interval_ns;
    if (tat - now_ns > slack) return Admission::kTooFast;
    e.tat_ns = tat + limits_.interval_ns;
  }
  if (e.live++ == 0) busy_.splice(busy_.begin(), idle_, it);
  return Admission::kAdmitted;
}

void SourceTable::release(const SourceKey& key) {
  auto found = index_.find(key);
  if (found == index_.end()) return;  // not admitted here; busy entries are never evicted
  List::iterator it = found->second;
  if (it->live == 0) return;
  if (--it->live == 0) {
    idle_.splice(idle_.begin(), busy_, it);
    evict_idle_above(limits_.capacity);  // after a reload shrank the table
  }
}

uint32_t SourceTable::connections(const SourceKey& key) const {
  auto found = index_.find(key);
  return found == index_.end() ? 0 : found->second->live;
}

}  // namespace ringlb::sources
