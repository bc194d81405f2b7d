// Counters and histograms written by exactly one thread and read by the scraper.
//
// Each worker owns its own; a scrape sums them. The writer uses a relaxed load and store (no
// read-modify-write, no lock, no shared cache line), so recording costs a few instructions.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace ringlb::metrics {

class LocalCounter {
 public:
  // Release stores and acquire loads (plain moves on x86, as relaxed ones are): a scrape that
  // reads counter A, then B, sees every write to B that came before the write to A it saw. The
  // exporter relies on it for accepted >= closed + active (metrics/exporter.cc).
  void add(uint64_t n = 1) { value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_release); }
  void sub(uint64_t n = 1) { value_.store(value_.load(std::memory_order_relaxed) - n, std::memory_order_release); }
  void set(uint64_t v) { value_.store(v, std::memory_order_release); }
  uint64_t get() const { return value_.load(std::memory_order_acquire); }

 private:
  std::atomic<uint64_t> value_{0};
};

// Latency histogram with fixed bucket bounds from 1 us to 1 s (1-2-5 steps).
class LocalHistogram {
 public:
  static constexpr std::array<uint64_t, 19> kBoundsNs = {
      1'000,       2'000,       5'000,       10'000,      20'000,       50'000,     100'000,
      200'000,     500'000,     1'000'000,   2'000'000,   5'000'000,    10'000'000, 20'000'000,
      50'000'000,  100'000'000, 200'000'000, 500'000'000, 1'000'000'000};
  static constexpr size_t kBuckets = kBoundsNs.size() + 1;  // the last is +Inf

  void observe_ns(uint64_t ns) {
    size_t i = 0;
    while (i < kBoundsNs.size() && ns > kBoundsNs[i]) ++i;
    buckets_[i].add();
    sum_ns_.add(ns);
  }
  // Non-cumulative count of bucket i.
  uint64_t bucket(size_t i) const { return buckets_[i].get(); }
  uint64_t sum_ns() const { return sum_ns_.get(); }
  // Only when no thread writes it (a freed backend id).
  void reset() {
    for (auto& b : buckets_) b.set(0);
    sum_ns_.set(0);
  }
  uint64_t count() const {
    uint64_t n = 0;
    for (const auto& b : buckets_) n += b.get();
    return n;
  }

 private:
  std::array<LocalCounter, kBuckets> buckets_{};
  LocalCounter sum_ns_;
};

}  // namespace ringlb::metrics
