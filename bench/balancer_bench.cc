// Nanoseconds per backend pick, for each policy, with 2, 16 and 1000 backends.
#include <benchmark/benchmark.h>

#include "balancer/maglev.h"
#include "balancer/picker.h"

namespace ringlb::balancer {
namespace {

void BM_Pick(benchmark::State& state, Policy policy) {
  BackendRegistry registry;
  Snapshot snapshot;
  snapshot.policy = policy;
  const int n = static_cast<int>(state.range(0));
  for (int i = 0; i < n; ++i) {
    BackendSpec b;
    b.name = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":80";
    b.weight = 1 + static_cast<uint32_t>(i % 3);
    snapshot.backends.push_back(b);
  }
  if (!finish_snapshot(&snapshot, &registry, kDefaultMaglevSize).empty()) {
    state.SkipWithError("snapshot");
    return;
  }
  // Some load, so that leastconn and random2 compare real counts.
  for (int i = 0; i < n; ++i) snapshot.backends[static_cast<size_t>(i)].state->active = i % 7;
  Picker picker(snapshot, 0, 42);
  uint64_t key = 0;
  for (auto _ : state) {
    key += 0x9E3779B97F4A7C15ULL;
    benchmark::DoNotOptimize(picker.pick(key, 0));
  }
}

BENCHMARK_CAPTURE(BM_Pick, roundrobin, Policy::kRoundRobin)->Arg(2)->Arg(16)->Arg(1000);
BENCHMARK_CAPTURE(BM_Pick, leastconn, Policy::kLeastConn)->Arg(2)->Arg(16)->Arg(1000);
BENCHMARK_CAPTURE(BM_Pick, random2, Policy::kRandom2)->Arg(2)->Arg(16)->Arg(1000);
BENCHMARK_CAPTURE(BM_Pick, maglev, Policy::kMaglev)->Arg(2)->Arg(16)->Arg(1000);

}  // namespace
}  // namespace ringlb::balancer

BENCHMARK_MAIN();
