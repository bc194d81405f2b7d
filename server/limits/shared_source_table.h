// A listener's SourceTable as the workers share it: one mutex, taken once when a client's address
// is known (acquire) and once when an admitted client closes (release). The count per source is
// then exact however a listener's clients spread over the workers, as listener_active is for the
// listener's own max-connections. The lock holds one hash lookup and a list splice (an
// allocation for a new source); the scrape reads the mirrored atomics, never the lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "metrics/stats.h"
#include "server/limits/source_table.h"

namespace ringlb::sources {

using metrics::SourceTableStats;

class SharedSourceTable {
 public:
  // `stats` (may be null) outlives the table.
  SharedSourceTable(const SourceLimits& limits, SourceTableStats* stats) : table_(limits), stats_(stats) {
    set_enabled(true);
  }
  // Whether its listener's policy uses it now (a reload may turn the limits off and on again;
  // the table stays, with the counts of the connections it admitted).
  void set_enabled(bool on) {
    if (stats_ != nullptr) stats_->enabled.store(on, std::memory_order_relaxed);
  }
  SharedSourceTable(const SharedSourceTable&) = delete;
  SharedSourceTable& operator=(const SharedSourceTable&) = delete;

  void configure(const SourceLimits& limits) {
    std::lock_guard<std::mutex> lock(mu_);
    table_.configure(limits);
    mirror();
  }
  Admission acquire(const SourceKey& key, uint64_t now_ns) {
    std::lock_guard<std::mutex> lock(mu_);
    const Admission a = table_.acquire(key, now_ns);
    mirror();
    return a;
  }
  void release(const SourceKey& key) {
    std::lock_guard<std::mutex> lock(mu_);
    table_.release(key);
    mirror();
  }
  uint32_t connections(const SourceKey& key) {
    std::lock_guard<std::mutex> lock(mu_);
    return table_.connections(key);
  }

 private:
  void mirror() {
    if (stats_ == nullptr) return;
    stats_->entries.store(table_.size(), std::memory_order_relaxed);
    stats_->evictions.store(table_.evictions(), std::memory_order_relaxed);
  }

  std::mutex mu_;
  SourceTable table_;
  SourceTableStats* stats_;
};

}  // namespace ringlb::sources
