// The cost of one 200 ms worker tick at 10,000 and 100,000 idle connections (5-minute idle
// deadline): before, the scan of every connection slot that Worker::on_tick did; after, a
// TimerWheel::advance over the same timers, with none expiring and with 1% expiring and re-armed
// from the callback (lazy idle re-arming).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "server/worker/timer_wheel.h"

namespace ringlb::worker {
namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kTick = 200 * kMs;
constexpr uint64_t kIdle = 300'000 * kMs;  // --idle-timeout's default
constexpr uint64_t kStart = 1'000'000 * kMs;
// Connections have been idle for up to 200 s, so the first 100 s of ticks see no expiry; the
// benchmarks start over (timing paused) before they get there.
constexpr uint64_t kIdleFor = 200'000 * kMs;
constexpr int kTicksPerSetUp = 500;  // 100 s

// Worker::Conn as the old tick saw it: the same fields in the same order, so the scan strides
// over the same bytes per connection (types the scan never reads are stood in for by their size).
enum class State : uint8_t { kFree, kProxyHeader, kQueued, kConnecting, kProxying, kClosing };
struct Flow {
  int32_t buf = -1;
  uint32_t len = 0;
  uint32_t off = 0;
  bool eof = false;
  bool waiting = false;
  bool expect_data = false;
};
struct Conn {
  State state = State::kFree;
  bool counted = false;
  int client = -1;
  int backend = -1;
  int backend_index = -1;
  uint32_t backend_id = 0;
  uint16_t listener = 0;
  bool has_peer_name = false;
  bool has_proxied_dst = false;
  void* snap = nullptr;
  uint64_t key_hash = 0;
  uint32_t attempts = 0;
  uint64_t tried = 0;
  uint32_t inflight = 0;
  uint8_t first_eof = 0;
  uint64_t last_active_ns = 0;
  uint64_t connect_start_ns = 0;
  uint64_t deadline_ns = 0;
  uint64_t start_ns = 0;
  uint32_t accept_us = 0;
  uint64_t queued_ns = 0;
  uint64_t queue_wait_ns = 0;
  uint64_t queue_ticket = 0;
  uint64_t connected_ns = 0;
  uint64_t bytes[2] = {0, 0};
  Flow flow[2];
};

// The old tick read these from the config at run time; so does this copy (not constants the
// compiler could fold into the loop). The defaults, max-connection-duration off.
struct Timeouts {
  uint64_t idle_ns = kIdle;
  uint64_t fin_ns = 30'000 * kMs;
  uint64_t max_ns = 0;
  uint64_t queue_ns = 2'000 * kMs;
};

// The loop of the old Worker::on_tick, comparisons unchanged; close_conn becomes a count.
__attribute__((noinline)) size_t old_tick(std::vector<Conn>& conns, uint64_t now_ns,
                                          const Timeouts& config, bool draining,
                                          uint64_t drain_deadline_ns) {
  const uint64_t idle_ns = config.idle_ns;
  const uint64_t fin_ns = config.fin_ns;
  const uint64_t max_ns = config.max_ns;
  const uint64_t queue_ns = config.queue_ns;
  const bool drain_over = draining && now_ns >= drain_deadline_ns;
  size_t closed = 0;
  for (uint32_t id = 0; id < conns.size(); ++id) {
    Conn& conn = conns[id];
    if (conn.state == State::kFree || conn.state == State::kClosing) continue;
    if (drain_over || (conn.deadline_ns != 0 && now_ns >= conn.deadline_ns)) {
      ++closed;
    } else if (max_ns != 0 && now_ns - conn.start_ns >= max_ns) {
      ++closed;
    } else if (conn.state == State::kQueued) {
      if (now_ns - conn.queued_ns >= queue_ns) ++closed;
    } else if (conn.state == State::kProxying || conn.state == State::kProxyHeader) {
      const bool half_closed = conn.flow[0].eof || conn.flow[1].eof;
      const bool fin_first = half_closed && fin_ns < idle_ns;
      if (now_ns - conn.last_active_ns >= (fin_first ? fin_ns : idle_ns)) ++closed;
    }
  }
  return closed;
}

void BM_TickBeforeScan(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  std::mt19937_64 rng(1);
  std::vector<Conn> conns(n);
  for (Conn& conn : conns) {
    conn.state = State::kProxying;
    conn.start_ns = kStart - kIdleFor;
    conn.last_active_ns = kStart - rng() % kIdleFor;
  }
  Timeouts config;
  benchmark::DoNotOptimize(conns.data());
  benchmark::DoNotOptimize(config);
  int ticks = 0;
  uint64_t now = kStart;
  size_t closed = 0;
  for (auto _ : state) {
    if (++ticks == kTicksPerSetUp) {  // nothing to rebuild: the clock only
      ticks = 0;
      now = kStart;
    }
    now += kTick;
    closed += old_tick(conns, now, config, false, 0);
    benchmark::ClobberMemory();
  }
  if (closed != 0) state.SkipWithError("a connection expired");
}

// Arms one timer per connection, deadlines as the idle connections' last activity + 5 minutes.
std::unique_ptr<TimerWheel> idle_wheel(uint32_t n, uint32_t slots, uint64_t idle_for) {
  auto wheel = std::make_unique<TimerWheel>(n, 10 * kMs, slots, kStart);
  std::mt19937_64 rng(1);
  for (uint32_t id = 0; id < n; ++id) wheel->schedule(id, kStart - rng() % idle_for + kIdle);
  return wheel;
}

// Args: connections, wheel slots (10 ms each).
void BM_TickAfterWheel(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  const auto slots = static_cast<uint32_t>(state.range(1));
  std::unique_ptr<TimerWheel> wheel = idle_wheel(n, slots, kIdleFor);
  int ticks = 0;
  uint64_t now = kStart;
  size_t fired = 0;
  for (auto _ : state) {
    if (++ticks == kTicksPerSetUp) {
      state.PauseTiming();
      ticks = 0;
      now = kStart;
      wheel = idle_wheel(n, slots, kIdleFor);
      state.ResumeTiming();
    }
    now += kTick;
    fired += wheel->advance(now, [](uint32_t) {});
  }
  if (fired != 0) state.SkipWithError("a timer expired");
}

// 1% of the connections' timers expire each tick; each finds its connection active since and
// re-arms 5 minutes on. Deadlines spread over 100 ticks (20 s), so the run starts over then.
void BM_TickAfterWheelExpiring(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  const auto slots = static_cast<uint32_t>(state.range(1));
  constexpr int kTicksOfExpiries = 100;
  constexpr uint64_t kSpread = kTicksOfExpiries * kTick;
  auto set_up = [&] {
    auto wheel = std::make_unique<TimerWheel>(n, 10 * kMs, slots, kStart);
    std::mt19937_64 rng(1);
    for (uint32_t id = 0; id < n; ++id) wheel->schedule(id, kStart + 1 + rng() % kSpread);
    return wheel;
  };
  std::unique_ptr<TimerWheel> wheel = set_up();
  TimerWheel* w = wheel.get();
  auto rearm = [&w](uint32_t id) { w->schedule(id, w->deadline(id) + kIdle); };
  int ticks = 0;
  uint64_t now = kStart;
  size_t fired = 0;
  for (auto _ : state) {
    if (++ticks > kTicksOfExpiries) {
      state.PauseTiming();
      ticks = 1;
      now = kStart;
      wheel = set_up();
      w = wheel.get();
      state.ResumeTiming();
    }
    now += kTick;
    fired += wheel->advance(now, rearm);
  }
  state.counters["fired_per_tick"] =
      benchmark::Counter(static_cast<double>(fired), benchmark::Counter::kAvgIterations);
}

// What the event loop pays to size its timeout on each iteration, the wheel as
// BM_TickAfterWheel leaves it (the answer is kept until it passes; the first call walks).
void BM_NextExpiryHint(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  const auto slots = static_cast<uint32_t>(state.range(1));
  std::unique_ptr<TimerWheel> wheel = idle_wheel(n, slots, kIdleFor);
  wheel->advance(kStart + kTick, [](uint32_t) {});
  for (auto _ : state) benchmark::DoNotOptimize(wheel->next_expiry_hint());
}

// The wheels start over (timing paused) every 500 or 100 ticks; a fixed number of iterations
// keeps those set-ups (milliseconds at 100,000 timers) from dominating the run's wall time.
BENCHMARK(BM_TickBeforeScan)->Arg(10000)->Arg(100000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TickAfterWheel)
    ->ArgsProduct({{10000, 100000}, {4096, 32768}})
    ->Iterations(50 * kTicksPerSetUp)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TickAfterWheelExpiring)
    ->ArgsProduct({{10000, 100000}, {4096, 32768}})
    ->Iterations(100 * 100)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_NextExpiryHint)->ArgsProduct({{10000, 100000}, {4096, 32768}});

}  // namespace
}  // namespace ringlb::worker

BENCHMARK_MAIN();
