// What TLS termination and origination count, and their Prometheus families:
//   ringlb_tls_handshakes_total{listener,result}    result: ok or the close reason
//   ringlb_tls_handshake_seconds{listener}          histogram of completed handshakes
//   ringlb_tls_resumed_total{listener}              handshakes that resumed a session
//   ringlb_tls_certificate_expiry_timestamp_seconds{listener,name}
//   ringlb_tls_origination_failures_total{cluster,reason}
// Counters are per worker (one writer each, as stats.h's), found by name once and kept by the
// worker; a scrape sums them. Names are bounded by the config (listeners and clusters), never
// per client. Exported through Exporter::add().
#pragma once

#include <prometheus/collectable.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "metrics/local_counter.h"

namespace ringlb::metrics {

// A handshake's outcome: ok, or why its connection closed (the names of tls::failure_name).
#define RINGLB_TLS_RESULTS(X) \
  X(ok)                       \
  X(tls_handshake_timeout)    \
  X(tls_no_certificate)       \
  X(tls_bad_certificate)      \
  X(tls_protocol)

enum class TlsResult : uint8_t {
#define RINGLB_ENUM(name) k_##name,
  RINGLB_TLS_RESULTS(RINGLB_ENUM)
#undef RINGLB_ENUM
      kCount
};
const char* tls_result_name(TlsResult r);

// One terminating listener's counters in one worker.
struct alignas(64) TlsListenerCounters {
  std::array<LocalCounter, static_cast<size_t>(TlsResult::kCount)> handshakes{};
  LocalCounter resumed;
  LocalHistogram handshake_time;  // completed handshakes, from the first byte to the last
  void handshake(TlsResult r) { handshakes[static_cast<size_t>(r)].add(); }
};

// One originating cluster's counters in one worker.
struct alignas(64) TlsClusterCounters {
  std::array<LocalCounter, static_cast<size_t>(TlsResult::kCount)> failures{};  // [ok] unused
  void failed(TlsResult r) { failures[static_cast<size_t>(r)].add(); }
};

class TlsStats : public prometheus::Collectable {
 public:
  explicit TlsStats(size_t workers) : workers_(workers == 0 ? 1 : workers) {}

  // A listener's (cluster's) counters for `worker`, made on first use. The pointer stays valid
  // for the life of this object: a connection of a removed listener may still count.
  TlsListenerCounters* listener(const std::string& name, size_t worker);
  TlsClusterCounters* cluster(const std::string& name, size_t worker);
  // The listener's certificates as loaded now (a reload replaces them): (name, not after).
  void set_certificates(const std::string& listener, std::vector<std::pair<std::string, int64_t>> expiries);
  // A reload dropped it: its series leave /metrics (and come back, counts kept, if it returns).
  void remove_listener(const std::string& name);
  void remove_cluster(const std::string& name);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct Listener {
    explicit Listener(size_t workers) : counters(workers) {}
    std::vector<TlsListenerCounters> counters;  // by worker
    std::vector<std::pair<std::string, int64_t>> expiries;
    bool shown = true;
  };
  struct Cluster {
    explicit Cluster(size_t workers) : counters(workers) {}
    std::vector<TlsClusterCounters> counters;
    bool shown = true;
  };

  const size_t workers_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Listener>> listeners_;
  std::map<std::string, std::unique_ptr<Cluster>> clusters_;
};

}  // namespace ringlb::metrics
