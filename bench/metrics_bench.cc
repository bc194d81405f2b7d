// What recording costs on the data path: one CQE latency into a per-worker histogram, one
// counter increment, and the clock read that each event-loop iteration shares.
#include <benchmark/benchmark.h>

#include "metrics/local_counter.h"
#include "server/base/clock.h"

namespace ringlb::metrics {
namespace {

void BM_ObserveLatency(benchmark::State& state) {
  LocalHistogram h;
  uint64_t ns = 700;
  for (auto _ : state) {
    h.observe_ns(ns);
    ns = (ns * 7 + 13) % 3'000'000;  // spread over the low buckets, where CQE latencies live
  }
  benchmark::DoNotOptimize(h.count());
}
BENCHMARK(BM_ObserveLatency);

void BM_CounterAdd(benchmark::State& state) {
  LocalCounter c;
  for (auto _ : state) c.add(1);
  benchmark::DoNotOptimize(c.get());
}
BENCHMARK(BM_CounterAdd);

void BM_MonotonicClock(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(monotonic_ns());
}
BENCHMARK(BM_MonotonicClock);

}  // namespace
}  // namespace ringlb::metrics

BENCHMARK_MAIN();
