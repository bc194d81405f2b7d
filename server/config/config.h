// ringlb's configuration: command line (Boost.Program_options) and an optional INI file with the
// same names; the command line wins.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "balancer/maglev.h"
#include "balancer/snapshot.h"
#include "server/access_log_format.h"
#include "server/acl.h"
#include "server/address.h"
#include "server/protocol/proxy_protocol.h"

namespace ringlb {

using Millis = std::chrono::milliseconds;

// A configured duration in nanoseconds, the unit of the event loops' clocks.
inline uint64_t to_ns(Millis d) { return static_cast<uint64_t>(d.count()) * 1'000'000ULL; }

// Active health-check settings; a backend may override each.
struct HealthConfig {
  Millis interval{2000};  // 0 turns active checks (and passive marking down) off
  Millis timeout{1000};
  uint32_t rise = 2;
  uint32_t fall = 3;
};

struct BackendConfig {
  Address address;
  std::string text;  // as written, for logs and metric labels
  uint32_t weight = 1;
  uint32_t max_connections = 0;  // 0 = unlimited
  bool backup = false;
  // send-proxy / send-proxy-v2: a PROXY protocol header goes to the backend before any byte.
  ProxyProtocol proxy_protocol = ProxyProtocol::kNone;
  // Per-backend overrides of the global health settings (unset = global).
  std::optional<Millis> health_interval, health_timeout;
  std::optional<uint32_t> health_rise, health_fall;
};

struct ListenConfig {
  Address address;
  // accept-proxy: each client starts with a PROXY protocol header (ringlb is behind another
  // proxy or load balancer); its addresses stand for the connection's own.
  bool accept_proxy = false;
  // v6only (HAProxy's name): an IPv6 listener takes IPv6 clients only. Without it, [::] is
  // dual-stack and takes IPv4 clients too (as ::ffff:a.b.c.d).
  bool v6only = false;
};

struct Config {
  std::vector<ListenConfig> listen;
  std::vector<BackendConfig> backends;
  unsigned workers = 1;
  Millis connect_timeout{2000};
  Millis idle_timeout{300000};
  // Once either side has half-closed (sent FIN), the connection is closed after this long
  // without traffic: half-closed sockets must not linger until the idle timeout.
  Millis fin_timeout{30000};
  Millis drain_timeout{10000};
  // Envoy's max_downstream_connection_duration: long-lived connections are closed after this
  // long, busy or not, so clients reconnect and spread over backends added since. 0 = never.
  Millis max_connection_duration{0};
  // HAProxy's timeout queue: a client finding every backend that is up at its max-connections
  // waits this long for a turn (first come, first served), then is closed. 0 = closed at once.
  // Unset, it is the connect timeout, as in HAProxy.
  Millis queue_timeout{2000};
  unsigned max_connections = 4096;
  // --cpu-affinity: worker i runs (with its io-wq threads) on cpus[i % size], the acceptor on
  // cpus[0]. Empty: the scheduler places every thread.
  std::vector<int> cpus;
  // --acceptor-scheduling batch: the acceptor runs SCHED_BATCH, so a new connection does not
  // preempt a worker (or anything else) mid-batch; accepts queue and are handed off together.
  bool acceptor_batch = true;
  // --iowq-scheduling batch: the io-wq thread that runs a worker's SHUTDOWNs is SCHED_BATCH, so
  // queueing one does not preempt the worker; it runs when the worker sleeps, several at a time.
  bool iowq_batch = true;
  unsigned connect_attempts = 3;  // per client: first try plus retries on other backends
  unsigned buffer_size = 16384;
  unsigned buffers_per_worker = 1024;
  // --recv multishot: one multishot recv per direction stays armed for the connection's life
  // (no SQE, and no poll to arm, per message); single: one recv per message, as liburing's proxy.
  bool recv_multishot = false;
  // --flow-buffers: buffers one direction may hold before its recv stops (the slow-reader bound);
  // 2 or more lets a recv run while the previous buffer is being sent.
  unsigned flow_buffers = 1;
  unsigned backlog = 1024;
  balancer::Policy policy = balancer::Policy::kRoundRobin;
  balancer::HashKey hash_key = balancer::HashKey::kAddr;
  uint32_t maglev_size = balancer::kDefaultMaglevSize;
  HealthConfig health;
  bool metrics_enabled = true;
  Address metrics_listen;
  std::string config_file;
  std::string control_socket;  // --control-socket PATH ("" = none)
  std::string access_log;      // --access-log PATH ("" = none, "-" = standard output)
  AccessLogFormat access_log_format = AccessLogFormat::kLogfmt;  // --access-log-format
  // --allow / --deny: source addresses refused before any backend is tried. Reloadable.
  std::vector<Cidr> allow;
  std::vector<Cidr> deny;
  std::string takeover;        // --takeover PATH: take the listeners of the ringlb serving PATH
};

enum class ParseStatus {
  kRun,    // *config is ready
  kExit0,  // --help or --version: *message holds what to print on stdout
  kError,  // *message holds the one-line error; exit 2
};

ParseStatus parse_config(int argc, const char* const* argv, Config* config, std::string* message);

// "250ms", "5s", "1m", "2h". False (and *error) on anything else.
bool parse_duration(const std::string& text, Millis* out, std::string* error);

// "ADDR:PORT[,weight=N][,max-connections=N][,backup][,send-proxy|,send-proxy-v2]
// [,health-interval=D][,health-timeout=D][,rise=N][,fall=N]".
bool parse_backend(const std::string& text, BackendConfig* out, std::string* error);

}  // namespace ringlb
