// ringlb: accepts TCP connections on an acceptor ring, hands them to worker rings with msg_ring,
// and proxies them to backends.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "metrics/exporter.h"
#include "server/accept/acceptor.h"
#include "server/config/command_line.h"
#include "server/config/config.h"
#include "server/control/ctl.h"
#include "server/control/protocol.h"
#include "server/control/runtime_api.h"
#include "server/control/service_notify.h"
#include "server/discovery/cluster_publisher.h"
#include "server/discovery/etcd_discovery.h"
#include "server/discovery/dns_resolver.h"
#include "server/health/checker.h"
#include "server/base/log.h"
#include "server/runtime/shared_state.h"
#include "server/status/service.h"
#include "server/uring/buffer_region.h"
#include "server/uring/compat.h"
#include "server/uring/probe.h"
#include "server/base/version.h"
#include "server/worker/worker.h"

namespace ringlb {
namespace {

// How long a takeover waits for the old process to confirm that its accepts are over (it takes
// a round trip and a cancel: well under a millisecond here), while clients queue in the backlog.
constexpr int kHandOverWaitMs = 2000;

// Tells workers that did start to stop, from a throwaway ring (start-up failure path only).
void stop_workers(const std::vector<int>& ring_fds) {
  uring::Ring ring;
  uring::RingOptions options;
  options.single_issuer = false;
  options.defer_taskrun = false;
  if (ring.init(options) < 0) return;
  for (int fd : ring_fds) {
    uring::run_one(ring, [&](io_uring_sqe* sqe) {
      uring::prep_msg_ring_data(sqe, fd, 0, encode(Tag::kControl, 0, 0));
    });
  }
}

// "web: roundrobin, api: maglev", and the backends of every cluster in *backends.
std::string clusters_summary(const Config& config, size_t* backends) {
  std::string text;
  *backends = 0;
  for (const ClusterConfig& c : config.clusters) {
    *backends += c.backends.size();
    text += (text.empty() ? "" : ", ") + c.name + ": " + balancer::policy_name(c.policy);
  }
  return text;
}

std::string plural(size_t n, const char* what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

// `ringlb check ARGS`: parse and validate ARGS as `ringlb ARGS` would, start nothing.
int check(int argc, char** argv) {
  Config config;
  std::string message;
  // argv[0] is "check", in the place of the program name.
  switch (parse_config(argc, argv, &config, &message)) {
    case ParseStatus::kExit0:
      fputs(message.c_str(), stdout);
      return 0;
    case ParseStatus::kError:
      for (size_t at = 0; at < message.size();) {  // FILE:LINE: KEY: message, one a line
        const size_t end = std::min(message.find('\n', at), message.size());
        log(LogLevel::kError, "%s", message.substr(at, end - at).c_str());
        at = end + 1;
      }
      return 2;
    case ParseStatus::kRun:
      break;
  }
  size_t backends = 0, names = 0;
  for (const ClusterConfig& c : config.clusters) {
    backends += c.backends.size();
    names += c.names.size();
  }
  // Names are checked for syntax only: check resolves nothing.
  printf("%s: ok (%s, %s, %s%s)\n", config.config_file.empty() ? "command line" : config.config_file.c_str(),
         plural(config.listen.size(), "listener").c_str(), plural(config.clusters.size(), "cluster").c_str(),
         plural(backends, "backend").c_str(), names > 0 ? (", " + plural(names, "DNS name")).c_str() : "");
  return 0;
}

// systemd's STATUS= line (systemctl status shows it).
std::string status_line(const SharedState& shared) {
  return "serving " + plural(shared.active_connections(), "connection");
}

int serve(const Config& config, int argc, char** argv) {
  set_log_level(config.log_level);
  if (std::string why = uring::check_kernel(); !why.empty()) {
    log(LogLevel::kError, "%s", why.c_str());
    return 1;
  }
  // Block the stop signals before any thread exists so every thread inherits the mask; the
  // acceptor reads them from a signalfd through its ring.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  // Writes to a peer that has gone must fail with -EPIPE on that connection, not kill ringlb.
  signal(SIGPIPE, SIG_IGN);
  const int signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd < 0) {
    log(LogLevel::kError, "signalfd: %s", strerror(errno));
    return 1;
  }

  // Each worker's direct-descriptor table (two slots per connection) counts against
  // RLIMIT_NOFILE when it is registered: take the hard limit, and refuse what cannot fit.
  const unsigned capacity = (config.max_connections + config.workers - 1) / config.workers;
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;
  setrlimit(RLIMIT_NOFILE, &nofile);
  if (Worker::table_slots(capacity) > nofile.rlim_cur) {
    log(LogLevel::kError,
        "--max-connections %u needs %u descriptor slots per worker, above the open-file "
        "limit %llu (lower it, add --workers, or raise ulimit -n)",
        config.max_connections, Worker::table_slots(capacity),
        static_cast<unsigned long long>(nofile.rlim_cur));
    return 2;
  }

  SharedState shared(config);
  std::vector<std::string> listener_names;
  for (const ListenConfig& l : config.listen) listener_names.push_back(l.name);
  listener_names.resize(kMaxListeners);  // a reload names the indexes it adds
  shared.registry = std::make_unique<metrics::Registry>(config.workers, &shared.backends, listener_names);
  discovery::ClusterPublisher publisher(&shared);
  shared.publisher = &publisher;
  std::string why = set_up_routes(config, &shared);
  if (why.empty()) why = publisher.publish_file(config);
  if (!why.empty()) {
    log(LogLevel::kError, "%s", why.c_str());
    return 2;
  }
  std::unique_ptr<AccessLog> access_log;
  if (!config.access_log.empty()) {
    std::string why;
    access_log = AccessLog::open(config.access_log, shared.registry.get(), &why);
    if (!access_log) {
      log(LogLevel::kError, "%s", why.c_str());
      return 2;
    }
    shared.access_log = access_log.get();
  }
  for (unsigned i = 0; i < config.workers; ++i) {
    shared.workers.push_back(std::make_unique<WorkerSlot>());
    shared.workers.back()->capacity = capacity;
  }

  // An upgrade: ask the running ringlb for its listening sockets. If it is gone or answers
  // wrongly, say so and bind the addresses here (a busy address then fails below, exit 2).
  std::string error;
  std::vector<InheritedListener> inherited;
  int takeover_conn = -1;
  if (!config.takeover.empty()) {
    // The runtime state first, on a connection of its own (the listeners' one ends the old
    // process's control socket): drains, maintenance and runtime weights carry over.
    std::string state;
    if (Status s = request_overrides(config.takeover, &state); !s.ok()) {
      log(LogLevel::kWarning, "takeover: runtime state not carried over: %s", s.message().c_str());
    } else {
      control::restore_overrides(publisher, state);
    }
    if (Status s = request_listeners(config.takeover, &inherited, &takeover_conn); !s.ok()) {
      log(LogLevel::kWarning, "takeover: %s; binding the listeners here", s.message().c_str());
    }
  }

  // Listeners first: a bad or busy address must fail before any thread starts.
  Acceptor acceptor(shared);
  const int listen_ret = acceptor.open_listeners(inherited, &error);
  for (const InheritedListener& l : inherited) close(l.fd);  // registered (or unused): done
  if (listen_ret < 0) {
    log(LogLevel::kError, "%s", error.c_str());
    if (takeover_conn >= 0) close(takeover_conn);  // the old process keeps serving
    return 2;
  }
  for (size_t i = 0; i < acceptor.bound().size(); ++i) shared.listen_bound[i] = acceptor.bound()[i];
  // The status page before the exporter: the exporter stops serving (its threads call the page)
  // before the page goes.
  std::unique_ptr<status::Service> status_page;
  std::unique_ptr<metrics::Exporter> exporter;
  if (config.metrics_enabled) {
    exporter = metrics::Exporter::start(config.metrics_listen.to_string(), config.metrics_listen.get(),
                                        config.metrics_listen.length, *shared.registry, kVersion,
                                        &error);
    if (!exporter) {
      log(LogLevel::kError, "%s", error.c_str());
      return 2;
    }
    status_page = std::make_unique<status::Service>(shared, *exporter, kVersion);
  }

  // etcd discovery: its own thread. Each prefix is read once (or has failed once) before the
  // workers start and before a takeover tells the old process to stop accepting, so a node does
  // not turn clients away from an empty cluster while etcd answers.
  discovery::EtcdDiscovery etcd(&publisher);
  if (exporter) exporter->add(etcd.collector());
  etcd.configure(config);
  const size_t endpoints = std::max<size_t>(1, config.etcd.endpoints.size());
  const Millis etcd_wait = config.etcd.request_timeout * static_cast<int64_t>(endpoints);
  if (!etcd.wait_synced(std::min<Millis>(etcd_wait, Millis(10000)))) {
    log(LogLevel::kWarning, "etcd: not every prefix was read yet; serving what the file gives meanwhile");
  }
  uring::BufferRegion region;
  const size_t part = size_t{config.buffers_per_worker} * config.buffer_size;
  if (int ret = region.init(config.workers, part); ret < 0) {
    // Without CAP_IPC_LOCK the pinned buffers count against RLIMIT_MEMLOCK (often 8 MiB).
    log(LogLevel::kError, "cannot register %zu bytes of buffers per worker: %s%s", part, strerror(-ret),
        ret == -ENOMEM ? " (registered buffers count against the locked-memory limit, ulimit -l: raise it "
                         "(LimitMEMLOCK= under systemd) or lower --buffers or --buffer-size)"
                       : "");
    return 1;
  }

  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> threads;
  std::vector<int> started;
  int failed = 0;
  for (unsigned i = 0; i < config.workers; ++i) {
    workers.push_back(std::make_unique<Worker>(shared, i, region));
    std::promise<int> ready;
    std::future<int> ring_fd = ready.get_future();
    threads.emplace_back([w = workers.back().get(), p = std::move(ready)]() mutable { w->run(&p); });
    const int fd = ring_fd.get();
    if (fd < 0) {
      failed = fd;
      log(LogLevel::kError, "worker %u could not start: %s", i, strerror(-fd));
      break;
    }
    shared.workers[i]->ring_fd = fd;
    started.push_back(fd);
  }
  if (failed < 0) {
    stop_workers(started);
    for (auto& t : threads) t.join();
    return 1;
  }

  shared.acceptor_ring_fd = acceptor.ring_fd();
  if (takeover_conn >= 0) {
    // The listeners are registered and the workers run: the old process may stop accepting.
    static const char kReady[] = "ready\n";
    if (send(takeover_conn, kReady, sizeof(kReady) - 1, MSG_NOSIGNAL) < 0) {
      log(LogLevel::kWarning, "takeover: cannot tell %s we are ready: %s", config.takeover.c_str(),
          strerror(errno));
    } else if (int ret = wait_handed_over(takeover_conn, kHandOverWaitMs); ret < 0) {
      // Our accepts are armed below in any case: the old process may only be slow (a client
      // woken there as it stopped could then wait for the next one; protocol.h).
      log(LogLevel::kWarning, "takeover: %s did not confirm it stopped accepting (%s); accepting anyway",
          config.takeover.c_str(), strerror(-ret));
    } else {
      log(LogLevel::kInfo, "took over %zu listeners from %s", inherited.size(), config.takeover.c_str());
    }
    close(takeover_conn);
  }
  if (Status s = config.control_socket.empty() ? Status() : acceptor.open_control(config.control_socket); !s.ok()) {
    log(LogLevel::kWarning, "%s", s.message().c_str());  // serving matters more: carry on without it
  }
  // Backends written as names: resolved on a thread of their own, published as they answer.
  discovery::DnsResolver resolver(&publisher, &shared.registry->dns);
  if (std::string why = resolver.start(config); !why.empty()) {
    log(LogLevel::kError, "%s", why.c_str());
    stop_workers(started);
    for (auto& t : threads) t.join();
    return 1;
  }
  acceptor.set_reload([&shared, &acceptor, &publisher, &etcd, &resolver, argc, argv] {
    // Whatever the outcome, READY=1 again after it: systemd waits for it to finish the reload.
    service::reloading();
    struct Ready {
      const SharedState& shared;
      ~Ready() { service::ready(status_line(shared)); }
    } ready{shared};
    // Log rotation: the file was moved away, or will be; write to a new one at the same path.
    if (shared.access_log != nullptr) shared.access_log->reopen();
    Config fresh;
    std::string message;
    // The same path as at start-up: argv again, so --config FILE is read again.
    const ParseStatus status = parse_config(argc, argv, &fresh, &message);
    if (status != ParseStatus::kRun && message.empty()) message = "the command line does not run ringlb";
    // Listeners added, removed or changed: matched by name, new ones get new indexes.
    Acceptor::ListenerPlan plan;
    if (status == ParseStatus::kRun) message = acceptor.plan_listeners(fresh, &plan);
    std::vector<std::string> changed;
    if (message.empty()) {
      message = publisher.publish_file(fresh, &changed, &plan.indexes);
      if (!message.empty()) acceptor.cancel_listeners(plan);
    }
    if (!message.empty()) {
      std::string line;  // one log line, every error in it
      for (char ch : message) line += ch == '\n' ? std::string("; ") : std::string(1, ch);
      log(LogLevel::kError, "reload failed: %s; keeping the running configuration", line.c_str());
      shared.registry->reload_failures.add();
      return;
    }
    etcd.configure(fresh);  // prefixes added or removed, another etcd
    resolver.update(fresh);  // new names are looked up, removed ones withdrawn
    // The policies name the new indexes (and mark the removed ones) before these accept.
    for (const std::string& line : acceptor.apply_listeners(plan)) {
      log(LogLevel::kError, "reload: %s", line.c_str());
    }
    size_t backends = 0;
    const std::string clusters = clusters_summary(fresh, &backends);
    std::string republished;
    for (const std::string& name : changed) republished += (republished.empty() ? "" : ", ") + name;
    std::string not_applied;
    for (const std::string& what : not_applied_at_reload(shared.config, fresh)) {
      not_applied += (not_applied.empty() ? "" : ", ") + what;
    }
    shared.registry->reloads.add();
    log(LogLevel::kInfo, "reloaded: %zu backends (%s); changed: %s%s%s", backends, clusters.c_str(),
        republished.empty() ? "none" : republished.c_str(), not_applied.empty() ? "" : "; not applied: ",
        not_applied.c_str());
  });

  HealthChecker checker(shared);
  std::promise<void> checker_ready;
  std::future<void> checker_set_up = checker_ready.get_future();
  std::thread checker_thread([&checker, p = std::move(checker_ready)]() mutable { checker.run(&p); });
  // Announced as running only once every thread has its ring: nothing is still being set up.
  checker_set_up.wait();
  // Start-up waits for each name's first answer, but no longer than one lookup may take (every
  // server, every attempt): a DNS outage must not keep the other clusters from serving.
  if (resolver.names() > 0) {
    // A little past it, so that a lookup that times out is reported as such (not as late).
    const Millis bound = resolver.lookup_bound() + Millis{250};
    if (size_t late = resolver.wait_first_answers(bound); late > 0) {
      log(LogLevel::kWarning, "dns: %zu of %zu names not answered within %lld ms; serving without them until they are",
          late, resolver.names(), static_cast<long long>(bound.count()));
    }
  }

  // Start-up is done: backends published from now on (reloads, discovery, `ctl enable`) ramp
  // where the cluster has slow start; those it started with did not.
  shared.ramp_new_backends.store(true, std::memory_order_relaxed);
  for (const Address& a : acceptor.bound()) {
    log(LogLevel::kInfo, "listening on %s", a.to_string().c_str());
  }
  if (exporter) {
    Address metrics = config.metrics_listen;
    metrics.set_port(static_cast<uint16_t>(exporter->port()));
    log(LogLevel::kInfo, "metrics on http://%s/metrics, status page on http://%s/", metrics.to_string().c_str(),
        metrics.to_string().c_str());
  }
  size_t backends = 0;
  const std::string clusters = clusters_summary(config, &backends);
  const std::string names = resolver.names() > 0 ? " and " + plural(resolver.names(), "DNS name") : "";
  log(LogLevel::kInfo,
      "loaded %s: %s, %s, %s%s (%s), %s, %u buffers of %u KiB per worker, up to %u connections",
      config.config_file.empty() ? "the command line" : config.config_file.c_str(),
      plural(config.listen.size(), "listener").c_str(), plural(config.clusters.size(), "cluster").c_str(),
      plural(backends, "backend").c_str(), names.c_str(), clusters.c_str(), plural(config.workers, "worker").c_str(),
      config.buffers_per_worker, config.buffer_size / 1024, config.max_connections);

  if (!config.cpus.empty()) {
    // Last, so that only the acceptor (this thread) is pinned, not the threads started above
    // (the same goes for its scheduling policy below).
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(config.cpus[0], &set);
    if (int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); err != 0) {
      log(LogLevel::kWarning, "acceptor: setting the CPU affinity: %s", strerror(err));
    }
  }
  if (config.acceptor_batch) {
    // Measured (bench/README.md): with normal scheduling each new connection preempts whatever
    // runs on the acceptor's CPU, often the worker it is about to hand to, and the acceptor
    // sleeps and wakes once per connection. As SCHED_BATCH it waits for its turn, finds several
    // connections and hands them off in one go: 10-12% less CPU per connection in close mode.
    sched_param param{};
    if (int err = pthread_setschedparam(pthread_self(), SCHED_BATCH, &param); err != 0) {
      log(LogLevel::kWarning, "acceptor: SCHED_BATCH: %s", strerror(err));
    }
  }
  service::ready(status_line(shared));
  {
    // Until the acceptor returns: the drain, then the end of it, are reported by it and below.
    service::StatusReporter reporter([&shared] { return status_line(shared); }, std::chrono::seconds(5));
    acceptor.run(signal_fd);
  }
  resolver.stop();
  for (auto& t : threads) t.join();
  etcd.stop();
  checker.stop();
  checker_thread.join();
  close(signal_fd);
  log(LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace
}  // namespace ringlb

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "ctl") {
    if (argc < 4) {
      ringlb::log(ringlb::LogLevel::kError,
                  "usage: ringlb ctl PATH COMMAND [ARGS] (connections, backends, overrides, "
                  "set-weight CLUSTER BACKEND N|reset, drain|disable|enable CLUSTER BACKEND), "
                  "or ringlb ctl PATH - (command lines from stdin)");
      return 2;
    }
    // "-": command lines from stdin, as written (a saved `ctl PATH overrides`, replayed).
    if (argc == 4 && std::string(argv[3]) == "-") return ringlb::run_ctl_lines(argv[2], stdin);
    return ringlb::run_ctl(argv[2], std::vector<std::string>(argv + 3, argv + argc));
  }
  if (argc >= 2 && std::string(argv[1]) == "check") return ringlb::check(argc - 1, argv + 1);
  ringlb::Config config;
  std::string message;
  switch (ringlb::parse_config(argc, argv, &config, &message)) {
    case ringlb::ParseStatus::kExit0:
      fputs(message.c_str(), stdout);
      return 0;
    case ringlb::ParseStatus::kError:
      break;
    case ringlb::ParseStatus::kRun:
      return ringlb::serve(config, argc, argv);
  }
  // Every error on a line of its own, each naming the program.
  for (size_t at = 0; at < message.size();) {
    const size_t end = std::min(message.find('\n', at), message.size());
    ringlb::log(ringlb::LogLevel::kError, "%s", message.substr(at, end - at).c_str());
    at = end + 1;
  }
  return 2;
}
