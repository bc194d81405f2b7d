// Per-source limits of one listener (HAProxy's stick table with conn_cur and conn_rate, nginx's
// limit_conn): live connections per client address, and new connections per address through a
// token bucket. Pure logic, no locks and no clock of its own (the caller passes the time), so it
// is tested without io_uring; SharedSourceTable (shared_source_table.h) is what workers share.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <list>
#include <unordered_map>

namespace ringlb::sources {

// A client's address without its port. IPv4 is stored as ::ffff:a.b.c.d, so a dual-stack
// listener's IPv4 clients and an IPv4 listener's are the same source.
struct SourceKey {
  uint64_t hi = 0;
  uint64_t lo = 0;
  bool operator==(const SourceKey&) const = default;
};

// The key of an AF_INET or AF_INET6 sockaddr (anything else: the zero key). An IPv6 address is
// cut to its first `v6_prefix` bits: one host holds a whole /64 and can rotate through it, so
// per-source limits keyed by /128 would not hold it. (IPv4, also mapped into IPv6, is whole.)
SourceKey source_key(const sockaddr* addr, unsigned v6_prefix = 128);

struct SourceKeyHash {
  size_t operator()(const SourceKey& k) const;
};

struct SourceLimits {
  uint32_t max_connections = 0;    // live connections per source; 0 = unlimited
  // The token bucket: one new connection per `interval_ns` on average, `burst` at once.
  // interval_ns 0 = no rate limit.
  uint64_t interval_ns = 0;
  uint32_t burst = 1;
  uint32_t capacity = 16384;       // sources tracked at most (the table's memory bound)
  bool operator==(const SourceLimits&) const = default;
};

enum class Admission : uint8_t {
  kAdmitted,
  kTooMany,    // the source has max_connections live
  kTooFast,    // its bucket is empty
  kTableFull,  // a new source, and every tracked source has live connections: none to evict
};

class SourceTable {
 public:
  explicit SourceTable(const SourceLimits& limits) : limits_(limits) {}
  SourceTable(const SourceTable&) = delete;
  SourceTable& operator=(const SourceTable&) = delete;

  // New limits (a reload). A smaller capacity evicts idle sources down to it; sources with live
  // connections stay (their counts must stay exact), so the table may stay above it until they
  // close, refusing new sources meanwhile.
  void configure(const SourceLimits& limits);
  const SourceLimits& limits() const { return limits_; }

  // A new connection from `key` at `now_ns` (any monotonic clock; the workers' clocks differ by
  // a loop iteration, so time going back a little is allowed and only makes the bucket look
  // fuller). kAdmitted counts it: release() must follow when it closes.
  Admission acquire(const SourceKey& key, uint64_t now_ns);
  // A connection acquire() admitted has closed.
  void release(const SourceKey& key);

  size_t size() const { return index_.size(); }
  uint64_t evictions() const { return evictions_; }
  uint32_t connections(const SourceKey& key) const;  // 0 for an untracked source

 private:
  struct Entry {
    SourceKey key;
    uint32_t live = 0;
    // The bucket as GCRA's theoretical arrival time: the bucket is full at or after tat_ns, and
    // each admitted connection moves it interval_ns later. Integer, exact, one word.
    uint64_t tat_ns = 0;
  };
  using List = std::list<Entry>;

  void evict_idle_above(size_t size);

  SourceLimits limits_;
  // Sources without live connections, most recently seen first: the least recently used one is
  // evicted for a new source. Sources with live connections are in busy_ and never evicted.
  List idle_;
  List busy_;
  std::unordered_map<SourceKey, List::iterator, SourceKeyHash> index_;
  uint64_t evictions_ = 0;
};

}  // namespace ringlb::sources
