#include "metrics/collector.h"

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <algorithm>
#include <array>
#include <limits>

#include "metrics/udp_export.h"

namespace ringlb::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

ClientMetric value_metric(MetricType type, double value,
                          std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  return m;
}

// A family with one unlabelled sample.
void add_single(std::vector<MetricFamily>* out, const char* name, const char* help, MetricType type,
                double value) {
  MetricFamily f = family(name, help, type);
  f.metric.push_back(value_metric(type, value));
  out->push_back(std::move(f));
}

// Sums several single-writer histograms into one Prometheus histogram.
ClientMetric histogram_metric(const std::vector<const LocalHistogram*>& parts,
                              std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  uint64_t cumulative = 0;
  uint64_t sum_ns = 0;
  for (size_t i = 0; i < LocalHistogram::kBuckets; ++i) {
    for (const LocalHistogram* h : parts) cumulative += h->bucket(i);
    ClientMetric::Bucket b;
    b.cumulative_count = cumulative;
    b.upper_bound = i < LocalHistogram::kBoundsNs.size()
                        ? static_cast<double>(LocalHistogram::kBoundsNs[i]) / 1e9
                        : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back(b);
  }
  for (const LocalHistogram* h : parts) sum_ns += h->sum_ns();
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = static_cast<double>(sum_ns) / 1e9;
  return m;
}

}  // namespace

Collector::Collector(const Registry& registry, std::string version)
    : registry_(registry), version_(std::move(version)) {}

std::vector<MetricFamily> Collector::Collect() const {
  std::vector<MetricFamily> out;
  const Registry& r = registry_;
  const AcceptorStats& a = r.acceptor;
  // Read in this order, so that accepted >= closed + active holds in every scrape: a worker
  // lowers its live count before it counts the close (server/proxy/lifecycle.cc), and the
  // acceptor counts an accept before the hand-off that makes it live. The difference is the
  // hand-offs in flight.
  std::array<uint64_t, static_cast<size_t>(CloseReason::kCount)> closed{};
  for (size_t reason = 0; reason < closed.size(); ++reason) {
    for (const auto& w : r.workers) closed[reason] += w->closed[reason].get();
    if (static_cast<CloseReason>(reason) == CloseReason::k_max_connections) {
      closed[reason] += a.rejected_max_connections.get();
    }
  }
  std::vector<uint64_t> active;
  for (const auto& w : r.workers) active.push_back(w->active.get());
  const uint64_t accepted = a.accepted.get();
  const std::vector<std::string> listeners = r.listener_names();  // a reload may name new ones

  {
    MetricFamily f = family("ringlb_build_info", "ringlb's version; always 1.", MetricType::Gauge);
    f.metric.push_back(value_metric(MetricType::Gauge, 1, {{"version", version_}}));
    out.push_back(std::move(f));
  }
  add_single(&out, "ringlb_start_time_seconds", "Start time of the process since the Unix epoch.",
             MetricType::Gauge, r.start_time_seconds);
  {
    MetricFamily f = family("ringlb_cqe_latency_seconds",
                            "Time from submitting an io_uring SQE to reaping its CQE, by operation "
                            "(multishot accept: time since the previous completion).",
                            MetricType::Histogram);
    for (size_t op = 0; op < static_cast<size_t>(Op::kCount); ++op) {
      std::vector<const LocalHistogram*> parts{&a.cqe_latency[op]};
      for (const auto& w : r.workers) parts.push_back(&w->cqe_latency[op]);
      if (static_cast<Op>(op) == Op::k_health_check) parts.push_back(&r.health_check_latency);
      f.metric.push_back(histogram_metric(parts, {{"op", op_name(static_cast<Op>(op))}}));
    }
    out.push_back(std::move(f));
  }
  {
    MetricFamily f = family("ringlb_handoff_latency_seconds",
                            "Time from the accept completion in the acceptor to the descriptor's "
                            "arrival in a worker.",
                            MetricType::Histogram);
    std::vector<const LocalHistogram*> parts;
    for (const auto& w : r.workers) parts.push_back(&w->handoff_latency);
    f.metric.push_back(histogram_metric(parts));
    out.push_back(std::move(f));
  }
  add_single(&out, "ringlb_connections_accepted_total", "Client connections accepted.",
             MetricType::Counter, static_cast<double>(accepted));
  add_single(&out, "ringlb_accept_errors_total", "Accept completions that failed.",
             MetricType::Counter, static_cast<double>(a.accept_errors.get()));
  {
    MetricFamily f = family("ringlb_connections_active", "Live client connections, by worker.", MetricType::Gauge);
    MetricFamily slots = family("ringlb_open_direct_slots", "Direct descriptors open in each worker's table.", MetricType::Gauge);
    MetricFamily waits = family("ringlb_buffer_waits_total", "Receives that found every proxy buffer of the worker in use.", MetricType::Counter);
    MetricFamily in_use = family("ringlb_proxy_buffers_in_use", "Proxy buffers holding received bytes not yet sent, by worker (of --buffers each).", MetricType::Gauge);
    MetricFamily queued = family("ringlb_queued_connections", "Clients waiting for a backend that is at its max-connections, by worker.", MetricType::Gauge);
    for (size_t i = 0; i < r.workers.size(); ++i) {
      const std::string w = std::to_string(i);
      f.metric.push_back(value_metric(MetricType::Gauge, static_cast<double>(active[i]), {{"worker", w}}));
      slots.metric.push_back(value_metric(MetricType::Gauge, static_cast<double>(r.workers[i]->open_slots.get()), {{"worker", w}}));
      waits.metric.push_back(value_metric(MetricType::Counter, static_cast<double>(r.workers[i]->buffer_waits.get()), {{"worker", w}}));
      in_use.metric.push_back(value_metric(MetricType::Gauge, static_cast<double>(r.workers[i]->buffers_in_use.get()), {{"worker", w}}));
      queued.metric.push_back(value_metric(MetricType::Gauge, static_cast<double>(r.workers[i]->queued.get()), {{"worker", w}}));
    }
    out.push_back(std::move(f));
    out.push_back(std::move(slots));
    out.push_back(std::move(waits));
    out.push_back(std::move(in_use));
    out.push_back(std::move(queued));
  }
  {
    // The worker rings' health: each should stay 0 at the configured capacity.
    struct Ring {
      const char* name;
      const char* help;
      const LocalCounter WorkerStats::*counter;
    };
    static const Ring kRing[] = {
        {"ringlb_cq_overflows_total", "Event-loop passes that found completions on the kernel's CQ overflow list, by worker.", &WorkerStats::cq_overflows},
        {"ringlb_cq_dropped_total", "Completions the kernel dropped (-EBADR), by worker.", &WorkerStats::cq_dropped},
        {"ringlb_stale_completions_total", "Completions for a connection already freed, ignored, by worker.", &WorkerStats::stale_completions},
        {"ringlb_recv_backpressure_stops_total", "Multishot recvs cancelled because their direction held --flow-buffers buffers (a slow reader), by worker.", &WorkerStats::recv_stopped},
        {"ringlb_recv_multishot_ended_total", "Multishot recvs that ended while data flowed (their byte budget, what the direction's free buffers hold, spent), armed again when there is room, by worker.", &WorkerStats::recv_ended},
        {"ringlb_lost_handoffs_recovered_total", "Hand-offs whose completion was lost (msg_ring -EOVERFLOW), found and served, by worker.", &WorkerStats::lost_handoffs_recovered},
    };
    for (const Ring& k : kRing) {
      MetricFamily f = family(k.name, k.help, MetricType::Counter);
      for (size_t i = 0; i < r.workers.size(); ++i) {
        f.metric.push_back(value_metric(MetricType::Counter, static_cast<double>((r.workers[i].get()->*k.counter).get()),
                                        {{"worker", std::to_string(i)}}));
      }
      out.push_back(std::move(f));
    }
  }
  {
    MetricFamily f = family("ringlb_connections_closed_total", "Client connections closed, by reason.", MetricType::Counter);
    for (size_t reason = 0; reason < closed.size(); ++reason) {
      const uint64_t n = closed[reason];
      f.metric.push_back(value_metric(MetricType::Counter, static_cast<double>(n),
                                       {{"reason", close_reason_name(static_cast<CloseReason>(reason))}}));
    }
    out.push_back(std::move(f));
  }
  {
    static const char* const kErrnoNames[] = {"ENFILE", "EOVERFLOW", "EOWNERDEAD", "EBADFD", "EBADF", "EINVAL", "other"};
    MetricFamily f = family("ringlb_handoff_failures_total", "msg_ring hand-offs to a worker that failed, by errno.", MetricType::Counter);
    for (size_t i = 0; i < a.handoff_failures.size(); ++i) {
      f.metric.push_back(value_metric(MetricType::Counter, static_cast<double>(a.handoff_failures[i].get()), {{"errno", kErrnoNames[i]}}));
    }
    out.push_back(std::move(f));
    add_single(&out, "ringlb_handoff_retries_total", "Hand-offs retried on another worker.",
               MetricType::Counter, static_cast<double>(a.handoff_retries.get()));
  }
  {
    MetricFamily f = family("ringlb_slow_path_fd_installs_total",
                            "Direct descriptors installed as regular fds (fixed_fd_install), by reason.",
                            MetricType::Counter);
    for (size_t i = 0; i < a.fd_installs.size(); ++i) {
      uint64_t n = a.fd_installs[i].get();
      if (static_cast<InstallReason>(i) == InstallReason::k_diagnostics) {
        for (const auto& w : r.workers) n += w->fd_installs_diagnostics.get();
      }
      f.metric.push_back(value_metric(MetricType::Counter, static_cast<double>(n),
                                      {{"reason", install_reason_name(static_cast<InstallReason>(i))}}));
    }
    out.push_back(std::move(f));
  }
  {
    MetricFamily f = family("ringlb_control_clients_dropped_total",
                            "Control-socket clients closed by ringlb, by reason: busy (every place taken, or "
                            "stopping), command_timeout, answer_timeout.",
                            MetricType::Counter);
    for (size_t i = 0; i < a.control_drops.size(); ++i) {
      f.metric.push_back(value_metric(MetricType::Counter, static_cast<double>(a.control_drops[i].get()),
                                      {{"reason", control_drop_name(static_cast<ControlDrop>(i))}}));
    }
    out.push_back(std::move(f));
  }
  {
    MetricFamily up = family("ringlb_backend_up", "Whether the backend takes new connections (1) or not (0).", MetricType::Gauge);
    MetricFamily active = family("ringlb_backend_connections_active", "Live connections to the backend.", MetricType::Gauge);
    MetricFamily attempts = family("ringlb_backend_connect_attempts_total", "Connects started to the backend.", MetricType::Counter);
    MetricFamily failures = family("ringlb_backend_connect_failures_total", "Connects to the backend that failed or timed out.", MetricType::Counter);
    MetricFamily to = family("ringlb_backend_sent_bytes_total", "Bytes sent from clients to the backend.", MetricType::Counter);
    MetricFamily from = family("ringlb_backend_received_bytes_total", "Bytes received from the backend for clients.", MetricType::Counter);
    MetricFamily latency = family("ringlb_backend_connect_latency_seconds", "Time to connect to the backend.", MetricType::Histogram);
    MetricFamily check_duration = family("ringlb_backend_check_duration_seconds",
                                         "Time an active health check of the backend took, to its verdict.", MetricType::Histogram);
    MetricFamily checks = family("ringlb_backend_checks_total", "Active health checks of the backend, by result.", MetricType::Counter);
    MetricFamily weight = family("ringlb_backend_weight", "The weight the backend is picked by (0 while drained or disabled; set-weight changes it).", MetricType::Gauge);
    MetricFamily admin = family("ringlb_backend_admin_state", "The backend's runtime state: 1 for the one it is in (enabled, drain, maint), 0 for the others.", MetricType::Gauge);
    // Only live ids: a freed one has no series (its name is gone). An id freed and reused during
    // the scrape shows the new backend's counts under the old name once, harmlessly.
    for (const balancer::BackendRegistry::Live& live : r.backends->live_backends()) {
      const uint32_t b = live.id;
      const std::vector<ClientMetric::Label> label{{"cluster", r.backends->cluster_name(live.cluster)},
                                                   {"backend", live.name}};
      uint64_t n_attempts = 0, n_failures = 0, n_to = 0, n_from = 0;
      std::vector<const LocalHistogram*> parts;
      for (const auto& w : r.workers) {
        const BackendStats& s = w->backends[b];
        n_attempts += s.connect_attempts.get();
        n_failures += s.connect_failures.get();
        n_to += s.bytes_to_backend.get();
        n_from += s.bytes_from_backend.get();
        parts.push_back(&s.connect_latency);
      }
      up.metric.push_back(value_metric(MetricType::Gauge, r.backends->state(b).up.load(), label));
      active.metric.push_back(value_metric(MetricType::Gauge, r.backends->state(b).active.load(), label));
      attempts.metric.push_back(value_metric(MetricType::Counter, static_cast<double>(n_attempts), label));
      failures.metric.push_back(value_metric(MetricType::Counter, static_cast<double>(n_failures), label));
      to.metric.push_back(value_metric(MetricType::Counter, static_cast<double>(n_to), label));
      from.metric.push_back(value_metric(MetricType::Counter, static_cast<double>(n_from), label));
      latency.metric.push_back(histogram_metric(parts, label));
      weight.metric.push_back(value_metric(MetricType::Gauge, r.backends->state(b).weight.load(), label));
      // One series per state (a Prometheus "state set"): alerts select by label, not by number.
      static const char* const kAdmin[] = {"enabled", "drain", "maint"};
      const uint8_t in = r.backends->state(b).admin.load();
      for (uint8_t i = 0; i < 3; ++i) {
        std::vector<ClientMetric::Label> with_state = label;
        with_state.push_back({"state", kAdmin[i]});
        admin.metric.push_back(value_metric(MetricType::Gauge, in == i ? 1 : 0, std::move(with_state)));
      }
      const HealthCheckStats& h = r.checks[b];
      if (h.duration.count() == 0) continue;  // not checked (yet): no check series
      check_duration.metric.push_back(histogram_metric({&h.duration}, label));
      for (size_t i = 0; i < h.results.size(); ++i) {
        std::vector<ClientMetric::Label> with_result = label;
        with_result.push_back({"result", health::result_name(static_cast<health::Result>(i))});
        checks.metric.push_back(value_metric(MetricType::Counter, static_cast<double>(h.results[i].get()), with_result));
      }
    }
    for (auto* f : {&up, &active, &attempts, &failures, &to, &from, &latency, &weight, &admin, &check_duration, &checks}) {
      out.push_back(std::move(*f));
    }
  }
  {
    // Only the pairs that routed a client: the rest of listeners x clusters would be zeros (and
    // without SNI listeners, no family at all).
    MetricFamily f = family("ringlb_sni_routed_total", "Clients an SNI listener routed, by listener and cluster.", MetricType::Counter);
    const size_t clusters = r.backends->clusters();
    for (size_t l = 0; l < listeners.size(); ++l) {
      for (size_t c = 0; c < clusters; ++c) {
        uint64_t n = 0;
        for (const auto& w : r.workers) n += w->routed(l, c).get();
        if (n == 0) continue;
        f.metric.push_back(value_metric(MetricType::Counter, static_cast<double>(n),
                                        {{"listener", listeners[l]}, {"cluster", r.backends->cluster_name(c)}}));
      }
    }
    if (!f.metric.empty()) out.push_back(std::move(f));
  }
  {
    // Listeners with per-source limits only.
    MetricFamily entries = family("ringlb_source_table_entries",
                                  "Client addresses a listener's per-source table tracks.", MetricType::Gauge);
    MetricFamily evictions = family("ringlb_source_table_evictions_total",
                                    "Client addresses forgotten (least recently seen, no live connection) to make room in a listener's per-source table.",
                                    MetricType::Counter);
    for (size_t l = 0; l < listeners.size() && l < r.source_tables.size(); ++l) {
      const SourceTableStats& s = r.source_tables[l];
      if (!s.enabled.load(std::memory_order_relaxed)) continue;
      const std::vector<ClientMetric::Label> label{{"listener", listeners[l]}};
      entries.metric.push_back(value_metric(MetricType::Gauge, static_cast<double>(s.entries.load(std::memory_order_relaxed)), label));
      evictions.metric.push_back(value_metric(MetricType::Counter, static_cast<double>(s.evictions.load(std::memory_order_relaxed)), label));
    }
    if (!entries.metric.empty()) {
      out.push_back(std::move(entries));
      out.push_back(std::move(evictions));
    }
  }
  {
    // Only listeners whose connections were held: the others have no bandwidth limit (or never
    // reached it).
    MetricFamily f = family("ringlb_rate_limited_seconds_total",
                            "Time recvs were held by a bandwidth limit (download-rate, upload-rate), summed over "
                            "connections, by listener and direction (download: backend to client; upload: client "
                            "to backend).",
                            MetricType::Counter);
    for (size_t l = 0; l < listeners.size(); ++l) {
      uint64_t ns[2] = {0, 0};
      for (const auto& w : r.workers) {
        for (int down = 0; down < 2; ++down) ns[down] += w->rate_limited(l, down == 1).get();
      }
      if (ns[0] == 0 && ns[1] == 0) continue;
      for (int down = 0; down < 2; ++down) {
        f.metric.push_back(value_metric(MetricType::Counter, static_cast<double>(ns[down]) / 1e9,
                                        {{"listener", listeners[l]}, {"direction", down == 1 ? "download" : "upload"}}));
      }
    }
    if (!f.metric.empty()) out.push_back(std::move(f));
  }
  add_udp_families(r, listeners, &out);
  add_single(&out, "ringlb_health_checks_total", "Active health checks run.", MetricType::Counter,
             static_cast<double>(r.health_checks.get()));
  add_single(&out, "ringlb_health_check_failures_total", "Active health checks that failed.",
             MetricType::Counter, static_cast<double>(r.health_check_failures.get()));
  {
    // Only names configured now (a reload that drops one drops its series).
    MetricFamily lookups = family("ringlb_dns_resolutions_total",
                                  "DNS lookups of backend names, by cluster, name and result (ok, nxdomain, nodata, "
                                  "servfail, refused, timeout, error).",
                                  MetricType::Counter);
    MetricFamily addresses = family("ringlb_dns_addresses",
                                    "Addresses a backend name gives its clusters now (the held set while "
                                    "lookups fail, 0 once it is withdrawn).",
                                    MetricType::Gauge);
    for (const auto& [key, stats] : r.dns.snapshot()) {
      for (const auto& [result, n] : stats.resolutions) {
        lookups.metric.push_back(value_metric(MetricType::Counter, static_cast<double>(n),
                                              {{"cluster", key.first}, {"name", key.second}, {"result", result}}));
      }
      addresses.metric.push_back(value_metric(MetricType::Gauge, static_cast<double>(stats.addresses),
                                              {{"cluster", key.first}, {"name", key.second}}));
    }
    if (!addresses.metric.empty()) {
      out.push_back(std::move(lookups));
      out.push_back(std::move(addresses));
    }
  }
  add_single(&out, "ringlb_access_log_lines_total", "Access log lines written (--access-log).",
             MetricType::Counter, static_cast<double>(r.access_log_lines.get()));
  add_single(&out, "ringlb_access_log_dropped_lines_total",
             "Access log lines dropped: the writer was too far behind, or a write failed.",
             MetricType::Counter, static_cast<double>(r.access_log_dropped_lines.get()));
  return out;
}

}  // namespace ringlb::metrics
