#include "server/config/config.h"

#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <charconv>
#include <fstream>
#include <sstream>
#include <thread>

#include "server/version.h"

namespace po = boost::program_options;

namespace ringlb {
namespace {

bool parse_uint(const std::string& text, uint64_t max, uint64_t* out) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > max) {
    return false;
  }
  *out = value;
  return true;
}

po::options_description describe() {
  po::options_description desc("ringlb options");
  // Numbers are read as strings so that a bad value gets ringlb's own message naming it.
  desc.add_options()
      ("help,h", "print this help and exit")
      ("version", "print the version and exit")
      ("config", po::value<std::string>(), "INI file with the same option names; the command line wins")
      ("listen", po::value<std::vector<std::string>>(), "ADDR:PORT or [IPv6]:PORT to accept on, with ,accept-proxy when clients send a PROXY protocol header first and ,v6only to keep [::] from taking IPv4 clients (dual-stack by default) (repeatable; port 0 picks one)")
      ("backend", po::value<std::vector<std::string>>(), "ADDR:PORT or unix:/PATH, then [,weight=N][,max-connections=N][,backup][,send-proxy|,send-proxy-v2][,health-interval=D][,health-timeout=D][,rise=N][,fall=N] (repeatable)")
      ("balance", po::value<std::string>()->default_value("roundrobin"), "roundrobin (smooth weighted), leastconn, random2 (power of two choices) or maglev")
      ("hash-key", po::value<std::string>()->default_value("addr"), "maglev key: addr (client address) or addr,port")
      ("maglev-table-size", po::value<std::string>()->default_value("65537"), "maglev lookup table size; must be prime")
      ("health-interval", po::value<std::string>()->default_value("2s"), "time between active TCP checks of a backend; 0s turns health checking off")
      ("health-timeout", po::value<std::string>()->default_value("1s"), "connect timeout of a check")
      ("health-rise", po::value<std::string>()->default_value("2"), "successful checks in a row that bring a backend up")
      ("health-fall", po::value<std::string>()->default_value("3"), "failed checks (or connects) in a row that take a backend down")
      ("workers", po::value<std::string>(), "worker threads, one io_uring each (default: number of cores)")
      ("connect-timeout", po::value<std::string>()->default_value("2s"), "per backend connect attempt")
      ("connect-attempts", po::value<std::string>()->default_value("3"), "backends tried per client before giving up")
      ("idle-timeout", po::value<std::string>()->default_value("5m"), "close a connection with no traffic either way for this long")
      ("fin-timeout", po::value<std::string>()->default_value("30s"), "close a half-closed connection (one side sent FIN) with no traffic for this long (or the idle timeout, if shorter)")
      ("drain-timeout", po::value<std::string>()->default_value("10s"), "on SIGTERM/SIGINT, how long live connections may finish")
      ("queue-timeout", po::value<std::string>(), "how long a client waits when every backend is at its max-connections before it is closed; 0s: closed at once (default: the connect timeout)")
      ("max-connection-duration", po::value<std::string>()->default_value("0s"), "close any connection this long after it arrived, busy or not, so long-lived clients reconnect and rebalance; 0s: never")
      ("cpu-affinity", po::value<std::string>()->default_value("none"), "none, auto (worker i on the i-th allowed CPU) or CPU[,CPU...]: pin each worker and its io-wq threads; the acceptor shares the first CPU")
      ("acceptor-scheduling", po::value<std::string>()->default_value("batch"), "batch (SCHED_BATCH: new connections wait for the running thread instead of preempting it, and are accepted in batches) or normal")
      ("iowq-scheduling", po::value<std::string>()->default_value("batch"), "batch (each worker's io-wq thread, which runs its half-close SHUTDOWNs, is SCHED_BATCH: it waits for the worker to yield instead of preempting it, and runs queued SHUTDOWNs together) or normal")
      ("max-connections", po::value<std::string>()->default_value("4096"), "live client connections at most; more are closed at once")
      ("buffer-size", po::value<std::string>()->default_value("16384"), "bytes per proxy buffer")
      ("buffers", po::value<std::string>()->default_value("1024"), "proxy buffers per worker (power of two); shared by its connections")
      ("recv", po::value<std::string>()->default_value("single"), "multishot (one multishot recv per direction for the connection's life) or single (one recv per message)")
      ("flow-buffers", po::value<std::string>()->default_value("1"), "buffers one direction of a connection may hold before it stops receiving (bounds memory per slow reader); 2 or more receive while sending")
      ("backlog", po::value<std::string>()->default_value("1024"), "listen backlog")
      ("metrics-listen", po::value<std::string>()->default_value("127.0.0.1:9090"), "ADDR:PORT for /metrics, or none")
      ("control-socket", po::value<std::string>(), "Unix socket PATH for `ringlb ctl PATH connections` and for upgrades")
      ("allow", po::value<std::vector<std::string>>(), "CIDR (repeatable): when given, only clients from these networks are served")
      ("deny", po::value<std::vector<std::string>>(), "CIDR (repeatable): clients from these networks are closed at once (deny wins over allow)")
      ("access-log", po::value<std::string>(), "append a line per closed connection (client, backend, times, bytes, why it closed) to PATH, or - for standard output; reopened on SIGHUP for log rotation")
      ("access-log-format", po::value<std::string>()->default_value("logfmt"), "logfmt (key=value after the time) or json (one JSON object per line, same field names)")
      ("takeover", po::value<std::string>(), "take the listening sockets of the ringlb serving control socket PATH (upgrade without dropping connections)");
  return desc;
}

template <typename T>
bool get_uint(const po::variables_map& vm, const char* name, uint64_t min, uint64_t max, T* out,
              std::string* message) {
  if (!vm.count(name)) return true;
  const std::string text = vm[name].as<std::string>();
  uint64_t value = 0;
  if (!parse_uint(text, max, &value) || value < min) {
    *message = "invalid value '" + text + "' for --" + name + ": expected a whole number from " +
               std::to_string(min) + " to " + std::to_string(max);
    return false;
  }
  *out = static_cast<T>(value);
  return true;
}

bool get_duration(const po::variables_map& vm, const char* name, Millis* out,
                  std::string* message) {
  if (!vm.count(name)) return true;
  std::string error;
  if (!parse_duration(vm[name].as<std::string>(), out, &error)) {
    *message = "invalid value '" + vm[name].as<std::string>() + "' for --" + name + ": " + error;
    return false;
  }
  return true;
}

bool parse_cpu_affinity(const std::string& text, std::vector<int>* cpus, std::string* message) {
  cpus->clear();
  if (text == "none") return true;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) CPU_SET(0, &allowed);
  std::string allowed_list;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    allowed_list += (allowed_list.empty() ? "" : ",") + std::to_string(cpu);
    if (text == "auto") cpus->push_back(cpu);
  }
  if (text == "auto") return true;
  std::stringstream parts(text);
  std::string item;
  while (std::getline(parts, item, ',')) {
    uint64_t cpu = 0;
    if (!parse_uint(item, CPU_SETSIZE - 1, &cpu) || !CPU_ISSET(static_cast<int>(cpu), &allowed)) {
      *message = "invalid value '" + text + "' for --cpu-affinity: '" + item +
                 "' is not a CPU this process may use (" + allowed_list + "; or none, auto)";
      return false;
    }
    cpus->push_back(static_cast<int>(cpu));
  }
  if (cpus->empty()) {
    *message = "invalid value '" + text + "' for --cpu-affinity: expected none, auto or CPU[,CPU...]";
    return false;
  }
  return true;
}

// --acceptor-scheduling and --iowq-scheduling: batch (SCHED_BATCH) or normal.
bool parse_scheduling(const po::variables_map& vm, const char* name, bool* batch, std::string* message) {
  const std::string text = vm[name].as<std::string>();
  if (text != "batch" && text != "normal") {
    *message = "invalid value '" + text + "' for --" + name + ": expected batch or normal";
    return false;
  }
  *batch = text == "batch";
  return true;
}

}  // namespace

bool parse_duration(const std::string& text, Millis* out, std::string* error) {
  size_t digits = 0;
  while (digits < text.size() && isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  uint64_t value = 0;
  if (digits == 0 || !parse_uint(text.substr(0, digits), 1ULL << 40, &value)) {
    *error = "expected a duration such as 250ms, 5s, 1m";
    return false;
  }
  const std::string unit = text.substr(digits);
  uint64_t scale;
  if (unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  } else {
    *error = unit.empty() ? "a duration needs a unit: 250ms, 5s, 1m, 1h"
                          : "unknown unit '" + unit + "' (use ms, s, m, h)";
    return false;
  }
  *out = Millis(static_cast<int64_t>(value * scale));
  return true;
}

bool parse_backend(const std::string& text, BackendConfig* out, std::string* error) {
  std::stringstream parts(text);
  std::string item;
  std::getline(parts, item, ',');
  BackendConfig backend;
  backend.text = item;
  if (!parse_backend_address(item, &backend.address, error)) return false;
  if (backend.address.family() != AF_UNIX && backend.address.port() == 0) {
    *error = "backend port 0 is not connectable";
    return false;
  }
  while (std::getline(parts, item, ',')) {
    uint64_t value = 0;
    if (item == "backup") {
      backend.backup = true;
    } else if (item == "send-proxy" || item == "send-proxy-v2") {
      backend.proxy_protocol = item == "send-proxy" ? ProxyProtocol::kV1 : ProxyProtocol::kV2;
    } else if (item.rfind("weight=", 0) == 0) {
      if (!parse_uint(item.substr(7), 1000, &value) || value == 0) {
        *error = "weight '" + item.substr(7) + "' must be 1 to 1000";
        return false;
      }
      backend.weight = static_cast<uint32_t>(value);
    } else if (item.rfind("health-interval=", 0) == 0 || item.rfind("health-timeout=", 0) == 0) {
      Millis d{};
      std::string why;
      const size_t eq = item.find('=');
      if (!parse_duration(item.substr(eq + 1), &d, &why)) {
        *error = item.substr(0, eq) + " '" + item.substr(eq + 1) + "': " + why;
        return false;
      }
      (item[7] == 'i' ? backend.health_interval : backend.health_timeout) = d;
    } else if (item.rfind("rise=", 0) == 0 || item.rfind("fall=", 0) == 0) {
      if (!parse_uint(item.substr(5), 100, &value) || value == 0) {
        *error = item.substr(0, 4) + " '" + item.substr(5) + "' must be 1 to 100";
        return false;
      }
      (item[0] == 'r' ? backend.health_rise : backend.health_fall) = static_cast<uint32_t>(value);
    } else if (item.rfind("max-connections=", 0) == 0) {
      if (!parse_uint(item.substr(16), 1'000'000, &value)) {
        *error = "max-connections '" + item.substr(16) + "' must be a whole number";
        return false;
      }
      backend.max_connections = static_cast<uint32_t>(value);
    } else {
      *error = "unknown backend setting '" + item +
               "' (weight=N, max-connections=N, backup, send-proxy, send-proxy-v2, "
               "health-interval=D, health-timeout=D, rise=N, fall=N)";
      return false;
    }
  }
  *out = backend;
  return true;
}

ParseStatus parse_config(int argc, const char* const* argv, Config* config, std::string* message) {
  const po::options_description desc = describe();
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::ostringstream out;
      out << "usage: ringlb --listen ADDR:PORT --backend ADDR:PORT [options]\n"
          << "       ringlb ctl PATH connections   (live connections of the ringlb at PATH)\n\n"
          << desc << "\nSignals: SIGTERM/SIGINT drain and exit; SIGHUP re-reads --config.\n";
      *message = out.str();
      return ParseStatus::kExit0;
    }
    if (vm.count("version")) {
      *message = std::string("ringlb ") + kVersion + "\n";
      return ParseStatus::kExit0;
    }
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream file(path);
      if (!file) {
        *message = "cannot read config file '" + path + "'";
        return ParseStatus::kError;
      }
      // Values already set on the command line are kept: store() never overwrites.
      po::store(po::parse_config_file(file, desc), vm);
      config->config_file = path;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    *message = e.what();
    return ParseStatus::kError;
  }

  Config c;
  c.config_file = config->config_file;
  std::string error;
  if (!vm.count("listen")) {
    *message = "no --listen address given";
    return ParseStatus::kError;
  }
  for (const std::string& text : vm["listen"].as<std::vector<std::string>>()) {
    ListenConfig listen;
    const size_t comma = text.find(',');
    if (!parse_address(text.substr(0, comma), &listen.address, &error)) {
      *message = "invalid --listen address '" + text + "': " + error;
      return ParseStatus::kError;
    }
    for (size_t at = comma; at != std::string::npos;) {
      const size_t next = text.find(',', at + 1);
      const std::string setting = text.substr(at + 1, next == std::string::npos ? next : next - at - 1);
      at = next;
      if (setting == "accept-proxy") {
        listen.accept_proxy = true;
      } else if (setting == "v6only") {
        // HAProxy's v6only: [::] takes IPv6 clients only. Without it an IPv6 listener is
        // dual-stack; on an IPv4 address the setting means nothing, which is likely a mistake.
        if (listen.address.family() != AF_INET6) {
          *message = "--listen setting v6only in '" + text + "' needs an IPv6 address ([::]:PORT)";
          return ParseStatus::kError;
        }
        listen.v6only = true;
      } else {
        *message = "unknown --listen setting '" + setting + "' in '" + text + "' (accept-proxy, v6only)";
        return ParseStatus::kError;
      }
    }
    c.listen.push_back(listen);
  }
  if (!vm.count("backend")) {
    *message = "no --backend given: ringlb needs at least one";
    return ParseStatus::kError;
  }
  for (const std::string& text : vm["backend"].as<std::vector<std::string>>()) {
    BackendConfig backend;
    if (!parse_backend(text, &backend, &error)) {
      *message = "invalid --backend '" + text + "': " + error;
      return ParseStatus::kError;
    }
    c.backends.push_back(backend);
  }
  c.workers = std::max(1u, std::thread::hardware_concurrency());
  if (!get_uint(vm, "workers", 1, 256, &c.workers, message) ||
      !get_uint(vm, "connect-attempts", 1, 100, &c.connect_attempts, message) ||
      !get_uint(vm, "max-connections", 1, 1'000'000, &c.max_connections, message) ||
      !get_uint(vm, "buffer-size", 1024, 1 << 20, &c.buffer_size, message) ||
      !get_uint(vm, "buffers", 8, 32768, &c.buffers_per_worker, message) ||
      !get_uint(vm, "backlog", 1, 65535, &c.backlog, message) ||
      !get_uint(vm, "flow-buffers", 1, 64, &c.flow_buffers, message) ||
      !get_duration(vm, "connect-timeout", &c.connect_timeout, message) ||
      !get_duration(vm, "idle-timeout", &c.idle_timeout, message) ||
      !get_duration(vm, "fin-timeout", &c.fin_timeout, message) ||
      !get_duration(vm, "drain-timeout", &c.drain_timeout, message) ||
      !get_duration(vm, "max-connection-duration", &c.max_connection_duration, message) ||
      !get_uint(vm, "maglev-table-size", 2, 10'000'019, &c.maglev_size, message) ||
      !get_duration(vm, "health-interval", &c.health.interval, message) ||
      !get_duration(vm, "health-timeout", &c.health.timeout, message) ||
      !get_uint(vm, "health-rise", 1, 100, &c.health.rise, message) ||
      !get_uint(vm, "health-fall", 1, 100, &c.health.fall, message)) {
    return ParseStatus::kError;
  }
  const std::string balance = vm["balance"].as<std::string>();
  if (!balancer::parse_policy(balance, &c.policy)) {
    *message = "invalid value '" + balance +
               "' for --balance: expected roundrobin, leastconn, random2 or maglev";
    return ParseStatus::kError;
  }
  const std::string hash_key = vm["hash-key"].as<std::string>();
  if (hash_key == "addr") {
    c.hash_key = balancer::HashKey::kAddr;
  } else if (hash_key == "addr,port") {
    c.hash_key = balancer::HashKey::kAddrPort;
  } else {
    *message = "invalid value '" + hash_key + "' for --hash-key: expected addr or addr,port";
    return ParseStatus::kError;
  }
  if (c.policy == balancer::Policy::kMaglev && !balancer::is_prime(c.maglev_size)) {
    *message = "invalid value '" + std::to_string(c.maglev_size) +
               "' for --maglev-table-size: must be prime (65537 is)";
    return ParseStatus::kError;
  }
  if (c.health.interval.count() > 0 && c.health.timeout.count() == 0) {
    *message = "invalid value '0ms' for --health-timeout: must be above zero";
    return ParseStatus::kError;
  }
  if ((c.buffers_per_worker & (c.buffers_per_worker - 1)) != 0) {
    *message = "invalid value '" + std::to_string(c.buffers_per_worker) +
               "' for --buffers: must be a power of two";
    return ParseStatus::kError;
  }
  if (c.fin_timeout.count() == 0) {
    *message = "invalid value '0ms' for --fin-timeout: must be above zero";
    return ParseStatus::kError;
  }
  if (c.connect_timeout.count() == 0) {
    *message = "invalid value '0ms' for --connect-timeout: must be above zero";
    return ParseStatus::kError;
  }
  c.queue_timeout = c.connect_timeout;  // HAProxy's default for timeout queue
  if (!get_duration(vm, "queue-timeout", &c.queue_timeout, message)) return ParseStatus::kError;
  if (!parse_scheduling(vm, "acceptor-scheduling", &c.acceptor_batch, message) ||
      !parse_scheduling(vm, "iowq-scheduling", &c.iowq_batch, message)) {
    return ParseStatus::kError;
  }
  if (!parse_cpu_affinity(vm["cpu-affinity"].as<std::string>(), &c.cpus, message)) {
    return ParseStatus::kError;
  }
  const std::string recv = vm["recv"].as<std::string>();
  if (recv != "multishot" && recv != "single") {
    *message = "invalid value '" + recv + "' for --recv: expected multishot or single";
    return ParseStatus::kError;
  }
  c.recv_multishot = recv == "multishot";
  const std::string metrics = vm["metrics-listen"].as<std::string>();
  if (metrics == "none") {
    c.metrics_enabled = false;
  } else if (!parse_address(metrics, &c.metrics_listen, &error)) {
    *message = "invalid --metrics-listen address '" + metrics + "': " + error + " (or none)";
    return ParseStatus::kError;
  }
  if (vm.count("control-socket")) c.control_socket = vm["control-socket"].as<std::string>();
  for (const char* name : {"allow", "deny"}) {
    if (!vm.count(name)) continue;
    for (const std::string& text : vm[name].as<std::vector<std::string>>()) {
      Cidr cidr;
      std::string why;
      if (!parse_cidr(text, &cidr, &why)) {
        *message = std::string("invalid --") + name + " '" + text + "': " + why;
        return ParseStatus::kError;
      }
      (name[0] == 'a' ? c.allow : c.deny).push_back(cidr);
    }
  }
  if (vm.count("access-log")) {
    c.access_log = vm["access-log"].as<std::string>();
    if (c.access_log.empty()) {
      *message = "--access-log needs a PATH (or - for standard output)";
      return ParseStatus::kError;
    }
  }
  if (const std::string format = vm["access-log-format"].as<std::string>();
      !parse_access_log_format(format, &c.access_log_format)) {
    *message = "invalid value '" + format + "' for --access-log-format: expected logfmt or json";
    return ParseStatus::kError;
  }
  if (vm.count("takeover")) c.takeover = vm["takeover"].as<std::string>();
  *config = c;
  return ParseStatus::kRun;
}

}  // namespace ringlb
