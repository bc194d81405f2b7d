// One ringlb process serving a configuration: started in order, serving until SIGTERM or SIGINT,
// and stopped in the reverse order by its owners' destructors, the same after a failed start-up
// as after a drain. The members are declared in the order that makes their destruction the
// ordered stop; start() creates them in the order start-up needs.
#pragma once

#include <memory>
#include <optional>
#include <thread>

#include "server/status/service.h"
#include "metrics/exporter.h"
#include "server/accept/acceptor.h"
#include "server/access_log/access_log.h"
#include "server/base/error.h"
#include "server/base/unique_fd.h"
#include "server/config/config.h"
#include "server/discovery/cluster_publisher.h"
#include "server/discovery/dns_resolver.h"
#include "server/discovery/etcd_discovery.h"
#include "server/health/checker.h"
#include "server/process/worker_threads.h"
#include "server/runtime/shared_state.h"
#include "server/uring/buffer_region.h"

namespace ringlb::process {

class Takeover;

class Process {
 public:
  // `argc`/`argv` are the process's own command line: a reload reads it again.
  Process(const Config& config, int argc, const char* const* argv);
  // The ordered stop: DNS discovery, then the workers (joined: after run(), once they drained),
  // the metrics exporter, etcd discovery, the health checker, the acceptor and the rest.
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Starts everything, up to the moment this process can serve (a takeover's old process stops
  // accepting only then). An error says what could not start (its exit code: bad input or a
  // refusal of the machine); what did start is stopped by the destructor.
  Status start();
  // Serves until SIGTERM or SIGINT arrives, then drains. Only after start() succeeded.
  void run();

 private:
  // The health checker's thread, stopped and joined before the checker goes.
  struct CheckerThread {
    HealthChecker* checker = nullptr;
    std::thread thread;
    ~CheckerThread();
  };

  // start()'s steps, in order.
  Status prepare();        // log level, kernel check, signals, open-file limit
  Status publish_config();  // metrics registry, routes, the file's clusters, access log
  Status open_listeners(Takeover& takeover);
  Status start_exporter();
  void sync_etcd();
  Status start_workers();
  Status start_dns_and_checks();
  void announce() const;   // the start-up lines: listening on, metrics on, loaded
  void pin_acceptor() const;  // --cpu-affinity and --acceptor-scheduling for this thread

  const Config config_;
  const int argc_;
  const char* const* argv_;
  UniqueFd signal_fd_;
  SharedState shared_;
  discovery::ClusterPublisher publisher_;
  std::unique_ptr<AccessLog> access_log_;
  uring::BufferRegion region_;
  std::optional<Acceptor> acceptor_;
  std::optional<HealthChecker> checker_;
  CheckerThread checker_thread_;
  std::optional<discovery::EtcdDiscovery> etcd_;
  // Before the exporter: the exporter stops serving (its threads call the page) before it goes.
  std::unique_ptr<status::Service> status_page_;
  std::unique_ptr<metrics::Exporter> exporter_;
  WorkerThreads workers_;
  std::optional<discovery::DnsResolver> resolver_;
};

// `ringlb ARGS`: parses ARGS (printing --help's or --version's text instead, if asked), starts,
// serves until SIGTERM or SIGINT, and stops. An error says why it could not start.
Status run(int argc, const char* const* argv);

}  // namespace ringlb::process
