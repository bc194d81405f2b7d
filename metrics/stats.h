// What ringlb counts. One WorkerStats per worker thread and one AcceptorStats, each written only
// by its own thread; the exporter merges them on scrape. Label sets are bounded: per worker,
// backend, op, reason or errno, never per client.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "balancer/snapshot.h"
#include "metrics/dns_stats.h"
#include "metrics/local_counter.h"
#include "metrics/tls_stats.h"
#include "metrics/udp_stats.h"

namespace ringlb::metrics {

// io_uring operations whose completion latency is recorded (label op=...).
#define RINGLB_OPS(X) \
  X(accept)           \
  X(msg_ring)         \
  X(socket)           \
  X(connect)          \
  X(recv)             \
  X(send)             \
  X(shutdown)         \
  X(close)            \
  X(cancel)           \
  X(health_check)

enum class Op : uint8_t {
#define RINGLB_ENUM(name) k_##name,
  RINGLB_OPS(RINGLB_ENUM)
#undef RINGLB_ENUM
      kCount
};
const char* op_name(Op op);

// Why a client connection ended (label reason=...).
#define RINGLB_CLOSE_REASONS(X) \
  X(client_eof)                 \
  X(backend_eof)                \
  X(reset)                      \
  X(idle_timeout)               \
  X(fin_timeout)                \
  X(connect_failed)             \
  X(no_backend)                 \
  X(max_connections)            \
  X(denied)                     \
  X(drain)                      \
  X(max_duration)               \
  X(queue_timeout)              \
  X(bad_proxy_header)           \
  X(untrusted_proxy)            \
  X(source_connections)         \
  X(source_rate)                \
  X(source_table_full)          \
  X(handshakes)                 \
  X(source_handshakes)          \
  X(bad_client_hello)           \
  X(tls_handshake_timeout)      \
  X(tls_no_certificate)         \
  X(tls_bad_certificate)        \
  X(tls_protocol)               \
  X(no_route)                   \
  X(error)

enum class CloseReason : uint8_t {
#define RINGLB_ENUM(name) k_##name,
  RINGLB_CLOSE_REASONS(RINGLB_ENUM)
#undef RINGLB_ENUM
      kCount
};
const char* close_reason_name(CloseReason reason);

// Why a direct descriptor was installed as a regular fd (the slow paths).
#define RINGLB_INSTALL_REASONS(X) \
  X(listen_port)                  \
  X(takeover)                     \
  X(diagnostics)

enum class InstallReason : uint8_t {
#define RINGLB_ENUM(name) k_##name,
  RINGLB_INSTALL_REASONS(RINGLB_ENUM)
#undef RINGLB_ENUM
      kCount
};
const char* install_reason_name(InstallReason reason);

// Why ringlb closed a control-socket client on its own (label reason=...): every place was taken
// (or it was stopping), no command line within the deadline, the answer not taken within it.
#define RINGLB_CONTROL_DROPS(X) \
  X(busy)                       \
  X(command_timeout)            \
  X(answer_timeout)

enum class ControlDrop : uint8_t {
#define RINGLB_ENUM(name) k_##name,
  RINGLB_CONTROL_DROPS(RINGLB_ENUM)
#undef RINGLB_ENUM
      kCount
};
const char* control_drop_name(ControlDrop reason);

struct BackendStats {
  LocalCounter connect_attempts;
  LocalCounter connect_failures;
  LocalCounter bytes_to_backend;
  LocalCounter bytes_from_backend;
  LocalHistogram connect_latency;
  // When its backend id is freed (no worker can write it then: balancer/snapshot.h).
  void reset() {
    for (LocalCounter* c : {&connect_attempts, &connect_failures, &bytes_to_backend, &bytes_from_backend}) c->set(0);
    connect_latency.reset();
  }
};

// One backend's active checks, written by the health checker only.
struct HealthCheckStats {
  static constexpr uint8_t kNoResult = static_cast<uint8_t>(health::Result::kCount);
  LocalHistogram duration;  // from the socket to the verdict
  std::array<LocalCounter, static_cast<size_t>(health::Result::kCount)> results{};
  // The last check's result (kNoResult before the first) and when it came (Unix ms), for the
  // status page.
  std::atomic<uint8_t> last_result{kNoResult};
  std::atomic<uint64_t> last_unix_ms{0};
  void record(health::Result r, uint64_t unix_ms) {
    results[static_cast<size_t>(r)].add();
    last_result.store(static_cast<uint8_t>(r), std::memory_order_relaxed);
    last_unix_ms.store(unix_ms, std::memory_order_relaxed);
  }
  void reset() {
    duration.reset();
    for (LocalCounter& c : results) c.set(0);
    last_result.store(kNoResult, std::memory_order_relaxed);
    last_unix_ms.store(0, std::memory_order_relaxed);
  }
};

struct alignas(64) WorkerStats {
  WorkerStats() : backends(balancer::BackendRegistry::kCapacity) {}
  LocalCounter active;      // gauge: live client connections
  LocalCounter queued;      // gauge: clients waiting for a backend below its max-connections
  LocalCounter open_slots;  // gauge: direct descriptors open in this worker's table
  LocalCounter received;    // connections that arrived by msg_ring
  std::array<LocalCounter, static_cast<size_t>(CloseReason::kCount)> closed{};
  std::array<LocalHistogram, static_cast<size_t>(Op::kCount)> cqe_latency{};
  LocalHistogram handoff_latency;
  LocalCounter buffer_waits;  // recvs that found the buffer pool empty (-ENOBUFS)
  LocalCounter buffers_in_use;  // gauge: provided buffers holding bytes not yet sent
  // Multishot recvs: stopped because their flow held --flow-buffers buffers (back-pressure),
  // and ended by the kernel while data flowed (armed again at once).
  LocalCounter recv_stopped;
  LocalCounter recv_ended;
  // Ring health: loop iterations that found completions waiting on the kernel's overflow list
  // (the CQ was full), completions the kernel dropped outright (-EBADR), and completions for a
  // connection that had already been freed (ignored; possible only after drops).
  LocalCounter cq_overflows;
  LocalCounter cq_dropped;
  LocalCounter stale_completions;
  LocalCounter lost_handoffs_recovered;  // hand-offs whose completion was lost (msg_ring -EOVERFLOW)
  LocalCounter fd_installs_diagnostics;  // slow path: regular fds made for `ctl connections`
  std::vector<BackendStats> backends;  // by backend registry id (reset when an id is freed)
  // Clients an SNI listener routed, by listener * kMaxClusters + cluster (sized by Registry).
  std::vector<LocalCounter> sni_routed;
  // Nanoseconds recvs were held for a bandwidth limit, by listener * 2 + (1 for download, 0 for
  // upload) (sized by Registry).
  std::vector<LocalCounter> rate_limited_ns;
  UdpStats udp;  // UDP listeners' counts, by listener index (sized by Registry)

  LocalHistogram& op(Op o) { return cqe_latency[static_cast<size_t>(o)]; }
  LocalCounter& close(CloseReason r) { return closed[static_cast<size_t>(r)]; }
  LocalCounter& routed(size_t listener, size_t cluster) {
    return sni_routed[listener * balancer::BackendRegistry::kMaxClusters + cluster];
  }
  LocalCounter& rate_limited(size_t listener, bool download) { return rate_limited_ns[listener * 2 + (download ? 1 : 0)]; }
};

// Hand-off errors worth a label of their own; anything else counts as "other".
inline constexpr std::array<int, 6> kHandoffErrnos = {23 /*ENFILE*/, 75 /*EOVERFLOW*/,
                                                      130 /*EOWNERDEAD*/, 77 /*EBADFD*/,
                                                      9 /*EBADF*/, 22 /*EINVAL*/};

struct alignas(64) AcceptorStats {
  LocalCounter accepted;
  LocalCounter accept_errors;
  LocalCounter rejected_max_connections;
  std::array<LocalCounter, kHandoffErrnos.size() + 1> handoff_failures{};  // last = other
  LocalCounter handoff_retries;
  std::array<LocalCounter, static_cast<size_t>(InstallReason::kCount)> fd_installs{};
  std::array<LocalHistogram, static_cast<size_t>(Op::kCount)> cqe_latency{};
  std::array<LocalCounter, static_cast<size_t>(ControlDrop::kCount)> control_drops{};

  void handoff_failed(int err);
  LocalHistogram& op(Op o) { return cqe_latency[static_cast<size_t>(o)]; }
  void installed(InstallReason r) { fd_installs[static_cast<size_t>(r)].add(); }
  void control_dropped(ControlDrop r) { control_drops[static_cast<size_t>(r)].add(); }
};

// A listener's per-source table (server/limits/shared_source_table.h), as the scrape reads it:
// written under the table's lock, read without it.
struct SourceTableStats {
  std::atomic<bool> enabled{false};
  std::atomic<uint64_t> entries{0};
  std::atomic<uint64_t> evictions{0};
};

// Everything the exporter reads; owned by main, outlives the threads that write it.
struct Registry {
  // `listeners`: their names, by index (labels of the per-listener counters).
  Registry(size_t workers, const balancer::BackendRegistry* backends, std::vector<std::string> listeners = {});
  const balancer::BackendRegistry* backends;  // names, clusters and up/down, by id
  // Written by a reload that adds a listener (the acceptor's thread) while a scrape may read
  // them: both under listeners_mu. Read them with listener_names().
  std::vector<std::string> listeners;
  mutable std::mutex listeners_mu;
  std::vector<std::string> listener_names() const {
    std::lock_guard<std::mutex> lock(listeners_mu);
    return listeners;
  }
  void set_listener_name(size_t index, const std::string& name) {
    std::lock_guard<std::mutex> lock(listeners_mu);
    if (index < listeners.size()) listeners[index] = name;
  }
  std::vector<SourceTableStats> source_tables;  // by listener index, as many as `listeners`
  UdpListenerSet udp_listeners;
  // TLS termination and origination, by listener and cluster name (a Collectable of its own:
  // the exporter adds it).
  std::shared_ptr<TlsStats> tls;
  // Connections each listener accepted, by listener index (as many as `listeners`): written by
  // the acceptor, read by the status page's rates.
  std::vector<LocalCounter> listener_accepted;
  // Reloads (SIGHUP) applied and refused; written by the acceptor's thread, which runs them.
  LocalCounter reloads;
  LocalCounter reload_failures;
  std::vector<std::unique_ptr<WorkerStats>> workers;
  AcceptorStats acceptor;
  LocalHistogram health_check_latency;  // written by the health checker
  LocalCounter health_checks;
  LocalCounter health_check_failures;
  // By backend registry id (reset when an id is freed).
  std::vector<HealthCheckStats> checks = std::vector<HealthCheckStats>(balancer::BackendRegistry::kCapacity);
  // --access-log lines written, and dropped (writer too far behind, or a failed write). Written
  // under the access log's lock, so there is still one writer at a time.
  LocalCounter access_log_lines;
  LocalCounter access_log_dropped_lines;
  DnsStats dns;  // written by the DNS resolver thread
  double start_time_seconds = 0;
};

}  // namespace ringlb::metrics
