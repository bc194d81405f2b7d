#include "server/process/process.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <future>
#include <string>
#include <vector>

#include "server/base/log.h"
#include "server/base/version.h"
#include "server/config/command_line.h"
#include "server/config/udp_config.h"
#include "server/control/service_notify.h"
#include "server/process/takeover.h"
#include "server/runtime/publish.h"
#include "server/runtime/reload.h"
#include "server/runtime/summary.h"
#include "server/uring/probe.h"

namespace ringlb::process {
namespace {

// Client connections per worker: --max-connections spread over --workers, rounded up.
unsigned capacity_per_worker(const Config& config) {
  return (config.max_connections + config.workers - 1) / config.workers;
}

}  // namespace

Process::Process(const Config& config, int argc, const char* const* argv)
    : config_(config), argc_(argc), argv_(argv), shared_(config), publisher_(&shared_) {
  shared_.publisher = &publisher_;
}

Process::~Process() = default;

Process::CheckerThread::~CheckerThread() {
  if (!thread.joinable()) return;
  checker->stop();
  thread.join();
}

Status Process::start() {
  RINGLB_RETURN_IF_ERROR(prepare());
  RINGLB_RETURN_IF_ERROR(publish_config());
  // An upgrade: ask the running ringlb for its runtime state and its listening sockets. If it is
  // gone or answers wrongly, the listeners are bound here (a busy address then fails, exit 2).
  // Until hand_over() below it keeps serving, and it serves on if start-up fails before.
  Takeover takeover(config_.takeover, publisher_);
  // Listeners first: a bad or busy address must fail before any thread starts.
  RINGLB_RETURN_IF_ERROR(open_listeners(takeover));
  RINGLB_RETURN_IF_ERROR(start_exporter());
  sync_etcd();
  RINGLB_RETURN_IF_ERROR(start_workers());
  RINGLB_RETURN_IF_ERROR(start_dns_and_checks());
  // This process can serve now, with the backends start-up waits for (etcd's first read, the
  // DNS names' first answers): the old one may stop accepting. Said before the DNS wait, it left
  // clients queued in the backlog, neither process accepting, for up to a lookup's time.
  takeover.hand_over();
  if (!config_.control_socket.empty()) {
    // Serving matters more: carry on without it.
    if (Status s = acceptor_->open_control(config_.control_socket); !s.ok()) {
      log(LogLevel::kWarning, "%s", s.message().c_str());
    }
  }
  acceptor_->set_reload([this] {
    reload({&shared_, &*acceptor_, &publisher_, &*etcd_, &*resolver_}, argc_, argv_);
  });
  // Start-up is done: backends published from now on (reloads, discovery, `ctl enable`) ramp
  // where the cluster has slow start; those it started with did not.
  shared_.ramp_new_backends.store(true, std::memory_order_relaxed);
  announce();
  pin_acceptor();
  return {};
}

void Process::run() {
  service::ready(status_line(shared_));
  {
    // Until the acceptor returns: the drain, then the end of it, are reported by it and below.
    service::StatusReporter reporter([this] { return status_line(shared_); }, std::chrono::seconds(5));
    acceptor_->run(signal_fd_.get());
  }
  workers_.drained();
}

Status Process::prepare() {
  set_log_level(config_.log_level);
  RINGLB_RETURN_IF_ERROR(uring::check_kernel());
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
  signal_fd_.reset(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd_) return Status::failure(std::string("signalfd: ") + strerror(errno));

  // Each worker's direct-descriptor table (two slots per connection) counts against
  // RLIMIT_NOFILE when it is registered: take the hard limit, and refuse what cannot fit.
  const unsigned capacity = capacity_per_worker(config_);
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;
  setrlimit(RLIMIT_NOFILE, &nofile);
  if (Worker::table_slots(capacity) > nofile.rlim_cur) {
    return Status::errorf("--max-connections %u needs %u descriptor slots per worker, above the open-file "
                          "limit %llu (lower it, add --workers, or raise ulimit -n)",
                          config_.max_connections, Worker::table_slots(capacity),
                          static_cast<unsigned long long>(nofile.rlim_cur));
  }
  return {};
}

Status Process::publish_config() {
  std::vector<std::string> listener_names;
  for (const ListenConfig& l : config_.listen) listener_names.push_back(l.name);
  listener_names.resize(kMaxListeners);  // a reload names the indexes it adds
  shared_.registry = std::make_unique<metrics::Registry>(config_.workers, &shared_.backends, listener_names);
  RINGLB_RETURN_IF_ERROR(set_up_routes(config_, &shared_));
  if (std::string why = publisher_.publish_file(config_); !why.empty()) return Status::error(why);
  if (!config_.access_log.empty()) {
    StatusOr<std::unique_ptr<AccessLog>> opened = AccessLog::open(config_.access_log, shared_.registry.get());
    if (!opened.ok()) return opened.status();
    access_log_ = std::move(opened.value());
    shared_.access_log = access_log_.get();
  }
  for (unsigned i = 0; i < config_.workers; ++i) {
    shared_.workers.push_back(std::make_unique<WorkerSlot>());
    shared_.workers.back()->capacity = capacity_per_worker(config_);
  }
  return {};
}

Status Process::open_listeners(Takeover& takeover) {
  acceptor_.emplace(shared_);
  const Status opened = acceptor_->open_listeners(takeover.listeners());
  takeover.release_listeners();  // registered (or unused): done
  RINGLB_RETURN_IF_ERROR(opened);
  for (size_t i = 0; i < acceptor_->bound().size(); ++i) shared_.listen_bound[i] = acceptor_->bound()[i];
  shared_.acceptor_ring_fd = acceptor_->ring_fd();
  return {};
}

Status Process::start_exporter() {
  if (!config_.metrics_enabled) return {};
  std::string error;
  exporter_ = metrics::Exporter::start(config_.metrics_listen.to_string(), config_.metrics_listen.get(),
                                       config_.metrics_listen.length, *shared_.registry, kVersion, &error);
  if (!exporter_) return Status::error(error);
  exporter_->add(shared_.registry->tls);  // TLS termination and origination
  status_page_ = std::make_unique<status::Service>(shared_, *exporter_, kVersion);
  return {};
}

void Process::sync_etcd() {
  // etcd discovery: its own thread. Each prefix is read once (or has failed once) before the
  // workers start and before a takeover tells the old process to stop accepting, so a node does
  // not turn clients away from an empty cluster while etcd answers.
  etcd_.emplace(&publisher_);
  if (exporter_) exporter_->add(etcd_->collector());
  etcd_->configure(config_);
  const size_t endpoints = std::max<size_t>(1, config_.etcd.endpoints.size());
  const Millis etcd_wait = config_.etcd.request_timeout * static_cast<int64_t>(endpoints);
  if (!etcd_->wait_synced(std::min<Millis>(etcd_wait, Millis(10000)))) {
    log(LogLevel::kWarning, "etcd: not every prefix was read yet; serving what the file gives meanwhile");
  }
}

Status Process::start_workers() {
  const size_t part = size_t{config_.buffers_per_worker} * config_.buffer_size;
  if (int ret = region_.init(config_.workers, part); ret < 0) {
    // Without CAP_IPC_LOCK the pinned buffers count against RLIMIT_MEMLOCK (often 8 MiB).
    return Status::failure("cannot register " + std::to_string(part) + " bytes of buffers per worker: " +
                           strerror(-ret) +
                           (ret == -ENOMEM ? " (registered buffers count against the locked-memory limit, ulimit "
                                             "-l: raise it (LimitMEMLOCK= under systemd) or lower --buffers or "
                                             "--buffer-size)"
                                           : ""));
  }
  return workers_.start(shared_, region_);
}

Status Process::start_dns_and_checks() {
  // Backends written as names: resolved on a thread of their own, published as they answer.
  resolver_.emplace(&publisher_, &shared_.registry->dns);
  if (std::string why = resolver_->start(config_); !why.empty()) return Status::failure(why);
  checker_.emplace(shared_);
  std::promise<void> checker_ready;
  std::future<void> checker_set_up = checker_ready.get_future();
  checker_thread_.checker = &*checker_;
  checker_thread_.thread = std::thread([c = &*checker_, p = std::move(checker_ready)]() mutable { c->run(&p); });
  // Announced as running only once every thread has its ring: nothing is still being set up.
  checker_set_up.wait();
  // Start-up waits for each name's first answer, but no longer than one lookup may take (every
  // server, every attempt): a DNS outage must not keep the other clusters from serving.
  if (resolver_->names() > 0) {
    // A little past it, so that a lookup that times out is reported as such (not as late).
    const Millis bound = resolver_->lookup_bound() + Millis{250};
    if (size_t late = resolver_->wait_first_answers(bound); late > 0) {
      log(LogLevel::kWarning, "dns: %zu of %zu names not answered within %lld ms; serving without them until they are",
          late, resolver_->names(), static_cast<long long>(bound.count()));
    }
  }
  return {};
}

void Process::announce() const {
  for (const Address& a : acceptor_->bound()) {
    log(LogLevel::kInfo, "listening on %s", a.to_string().c_str());
  }
  if (exporter_) {
    Address metrics = config_.metrics_listen;
    metrics.set_port(static_cast<uint16_t>(exporter_->port()));
    log(LogLevel::kInfo, "metrics on http://%s/metrics, status page on http://%s/", metrics.to_string().c_str(),
        metrics.to_string().c_str());
  }
  size_t backends = 0;
  const std::string clusters = clusters_summary(config_, &backends);
  const std::string names = resolver_->names() > 0 ? " and " + plural(resolver_->names(), "DNS name") : "";
  log(LogLevel::kInfo,
      "loaded %s: %s, %s, %s%s (%s), %s, %u buffers of %u KiB per worker, up to %u connections",
      config_.config_file.empty() ? "the command line" : config_.config_file.c_str(),
      plural(config_.listen.size(), "listener").c_str(), plural(config_.clusters.size(), "cluster").c_str(),
      plural(backends, "backend").c_str(), names.c_str(), clusters.c_str(), plural(config_.workers, "worker").c_str(),
      config_.buffers_per_worker, config_.buffer_size / 1024, config_.max_connections);
}

void Process::pin_acceptor() const {
  if (!config_.cpus.empty()) {
    // Last, so that only the acceptor (this thread) is pinned, not the threads started above
    // (the same goes for its scheduling policy below).
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(config_.cpus[0], &set);
    if (int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); err != 0) {
      log(LogLevel::kWarning, "acceptor: setting the CPU affinity: %s", strerror(err));
    }
  }
  if (config_.acceptor_batch) {
    // Measured (bench/README.md): with normal scheduling each new connection preempts whatever
    // runs on the acceptor's CPU, often the worker it is about to hand to, and the acceptor
    // sleeps and wakes once per connection. As SCHED_BATCH it waits for its turn, finds several
    // connections and hands them off in one go: 10-12% less CPU per connection in close mode.
    sched_param param{};
    if (int err = pthread_setschedparam(pthread_self(), SCHED_BATCH, &param); err != 0) {
      log(LogLevel::kWarning, "acceptor: SCHED_BATCH: %s", strerror(err));
    }
  }
}

Status run(int argc, const char* const* argv) {
  Config config;
  std::string print;
  RINGLB_RETURN_IF_ERROR(parse_config(argc, argv, &config, &print));
  // Until the UDP data path serves them, a UDP listener is refused rather than opened as TCP.
  if (const std::string why = udp_not_served(config); !why.empty()) return Status::error(why);
  if (!print.empty()) {
    fputs(print.c_str(), stdout);
    return {};
  }
  {
    Process process(config, argc, argv);
    RINGLB_RETURN_IF_ERROR(process.start());
    process.run();
  }  // the ordered stop
  log(LogLevel::kInfo, "stopped");
  return {};
}

}  // namespace ringlb::process
