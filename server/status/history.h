// The status page's short memory: the last 15 minutes of every backend's and listener's
// connections, connection rate and health, kept in fixed-size rings so that no Prometheus is
// needed to see what just happened. A thread of its own reads the counters every second (the
// same relaxed reads a scrape makes: nothing on the data path changes) and keeps one sample per
// kSampleSeconds, kSamples of them. Memory is bounded: per backend a ring of kSamples samples of
// 12 bytes (about 1.1 KiB) and a window of kSampleSeconds counter readings (88 bytes); per
// listener the same; at most BackendRegistry::kCapacity backends (1,024: about 1.2 MiB) and the
// listeners in use. A backend's series goes when its id is freed, and starts afresh for a new one.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server/runtime/shared_state.h"

namespace ringlb::status {

using Json = nlohmann::ordered_json;

class History {
 public:
  static constexpr unsigned kSampleSeconds = 10;
  static constexpr unsigned kSamples = 90;  // 15 minutes

  explicit History(SharedState& shared) : shared_(shared) {}
  ~History() { stop(); }
  History(const History&) = delete;
  History& operator=(const History&) = delete;

  // `tick` is one second but for tests, which want a sample per kSampleSeconds ticks sooner.
  void start(std::chrono::milliseconds tick = std::chrono::seconds(1));
  void stop();
  // One second's reading, as the thread takes it (tests call it directly).
  void tick();

  // {"interval_seconds", "capacity", "samples"}: what every series below covers.
  Json summary() const;
  // The series of a backend (by registry id and identity) or a listener (by index):
  // {"active": [...], "rate": [...], "up": [...]} (backends only: the share of each interval it was
  // up, 0 to 1), oldest first, each as long as summary's "samples" (null before it existed); and
  // the rate now (connections/s over the last kSampleSeconds), null if not sampled yet.
  Json backend_series(uint32_t id, const std::string& cluster, const std::string& name) const;
  Json listener_series(size_t index) const;
  std::optional<double> backend_rate(uint32_t id, const std::string& cluster, const std::string& name) const;
  std::optional<double> listener_rate(size_t index) const;

 private:
  struct Sample {
    uint32_t active = 0;
    float rate = 0;     // connections/s over the interval
    uint8_t up = 0;     // seconds of the interval it was up (backends)
    uint8_t seen = 0;   // seconds of the interval it was read
  };
  static constexpr size_t kWindow = kSampleSeconds + 1;
  struct Series {
    std::string identity;  // "cluster/name" of a backend; a listener's name
    uint64_t first_tick = 0;    // the tick it was first read at (read at every tick since)
    uint64_t first_sample = 0;  // the first interval sample it has
    std::array<Sample, kSamples> ring{};       // by sample number % kSamples
    std::array<uint64_t, kWindow> window{};  // its total connections, by tick % kWindow
    uint32_t active = 0;                      // at the last tick
    uint8_t up_ticks = 0, seen_ticks = 0;     // in the current interval
  };

  void run();
  // Reads one entity at this tick (a new series when the slot held another identity).
  void read(std::unique_ptr<Series>* slot, const std::string& identity, uint64_t total, uint32_t active, bool up);
  // Connections/s over the last `ticks` ticks (at most kSampleSeconds) it was read for.
  std::optional<double> rate_of(const Series& s, uint64_t ticks) const;
  Json series_json(const Series* s, bool with_up) const;
  const Series* backend(uint32_t id, const std::string& cluster, const std::string& name) const;

  SharedState& shared_;
  mutable std::mutex mu_;
  uint64_t ticks_ = 0;    // ticks taken; tick t is stored at t % kWindow
  uint64_t samples_ = 0;  // interval samples taken; sample n is stored at n % kSamples
  std::array<double, kWindow> tick_time_{};  // seconds (steady clock) of each tick
  std::vector<std::unique_ptr<Series>> backends_;   // by registry id
  std::vector<std::unique_ptr<Series>> listeners_;  // by listener index
  std::chrono::milliseconds tick_length_{1000};
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ringlb::status
