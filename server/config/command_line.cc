#include "server/config/command_line.h"

#include <boost/program_options.hpp>
#include <set>
#include <sstream>

#include "server/config/settings.h"
#include "server/config/toml_config.h"
#include "server/base/version.h"

namespace po = boost::program_options;

namespace ringlb {
namespace {

po::options_description describe() {
  po::options_description desc("ringlb options");
  // Numbers are read as strings so that a bad value gets ringlb's own message naming it. The
  // defaults shown here are documentation: the model's own (config.h) are the ones used.
  desc.add_options()
      ("help,h", "print this help and exit")
      ("version", "print the version and exit")
      ("config", po::value<std::string>(), "TOML file (docs/configuration.md); flags given as well replace its top-level keys")
      ("listen", po::value<std::vector<std::string>>(), "ADDR:PORT or [IPv6]:PORT to accept on, with ,accept-proxy when clients send a PROXY protocol header first and ,v6only to keep [::] from taking IPv4 clients (dual-stack by default) (repeatable; port 0 picks one)")
      ("backend", po::value<std::vector<std::string>>(), "ADDR:PORT, unix:/PATH, or a name to resolve (HOST:PORT: every A and AAAA record; srv:_service._proto.name: SRV targets, weights and priorities), then [,weight=N][,max-connections=N][,backup][,send-proxy|,send-proxy-v2][,health-interval=D][,health-timeout=D][,rise=N][,fall=N] (repeatable; weight 0 to 1000, 0 = drained)")
      ("balance", po::value<std::string>()->default_value("roundrobin"), "roundrobin (smooth weighted), leastconn, random2 (power of two choices) or maglev")
      ("hash-key", po::value<std::string>()->default_value("addr"), "maglev key: addr (client address) or addr,port")
      ("maglev-table-size", po::value<std::string>()->default_value("65537"), "maglev lookup table size; must be prime")
      ("health-interval", po::value<std::string>()->default_value("2s"), "time between active checks of a backend (the check type is set in the file: check = tcp, http, https, send-expect or tls); 0s turns health checking off")
      ("health-timeout", po::value<std::string>()->default_value("1s"), "timeout of a whole check (connect, handshake, request and reply)")
      ("health-rise", po::value<std::string>()->default_value("2"), "successful checks in a row that bring a backend up")
      ("health-fall", po::value<std::string>()->default_value("3"), "failed checks (or connects) in a row that take a backend down")
      ("workers", po::value<std::string>(), "worker threads, one io_uring each (default: number of cores)")
      ("connect-timeout", po::value<std::string>()->default_value("2s"), "per backend connect attempt")
      ("connect-attempts", po::value<std::string>()->default_value("3"), "backends tried per client before giving up")
      ("idle-timeout", po::value<std::string>()->default_value("5m"), "close a connection with no traffic either way for this long (above zero: there is no off)")
      ("fin-timeout", po::value<std::string>()->default_value("30s"), "close a half-closed connection (one side sent FIN) with no traffic for this long (or the idle timeout, if shorter)")
      ("drain-timeout", po::value<std::string>()->default_value("10s"), "on SIGTERM/SIGINT, how long live connections may finish")
      ("resolve-min-interval", po::value<std::string>()->default_value("1s"), "a backend written as a name (HOST:PORT, srv:NAME) is resolved again at its records' TTL, but not sooner than this")
      ("resolve-max-interval", po::value<std::string>()->default_value("5m"), "... and not later than this")
      ("resolve-hold", po::value<std::string>()->default_value("5m"), "after a failed lookup (NXDOMAIN, SERVFAIL, timeout) a name keeps its last good addresses this long, then they are withdrawn")
      ("queue-timeout", po::value<std::string>(), "how long a client waits when every backend is at its max-connections before it is closed; 0s: closed at once (default: the connect timeout)")
      ("proxy-header-timeout", po::value<std::string>()->default_value("5s"), "an accept-proxy listener's client must have sent its whole PROXY header this long after it connected, or it is closed")
      ("max-connections-per-source", po::value<std::string>()->default_value("0"), "live connections one client address may hold on a listener (the PROXY header's source where one is honoured); more are closed at once; 0: no limit")
      ("connection-rate-per-source", po::value<std::string>()->default_value("0/s"), "N/s or N/m: new connections one client address may open on a listener (a token bucket); faster ones are closed at once; 0/s: no limit")
      ("connection-burst-per-source", po::value<std::string>()->default_value("0"), "new connections one client address may open at once under --connection-rate-per-source (the bucket's size); 0: the rate's N")
      ("source-table-size", po::value<std::string>()->default_value("16384"), "client addresses a listener with per-source limits tracks; beyond it the least recently seen one without live connections is forgotten, and with none to forget a new address is refused")
      ("max-connection-duration", po::value<std::string>()->default_value("0s"), "close any connection this long after it arrived, busy or not, so long-lived clients reconnect and rebalance; 0s: never")
      ("cpu-affinity", po::value<std::string>()->default_value("none"), "none, auto (worker i on the i-th allowed CPU) or CPU[,CPU...]: pin each worker and its io-wq threads; the acceptor shares the first CPU")
      ("acceptor-scheduling", po::value<std::string>()->default_value("batch"), "batch (SCHED_BATCH: new connections wait for the running thread instead of preempting it, and are accepted in batches) or normal")
      ("iowq-scheduling", po::value<std::string>()->default_value("batch"), "batch (each worker's io-wq thread, which runs its half-close SHUTDOWNs, is SCHED_BATCH: it waits for the worker to yield instead of preempting it, and runs queued SHUTDOWNs together) or normal")
      ("max-connections", po::value<std::string>()->default_value("4096"), "live client connections at most; more are closed at once")
      ("buffer-size", po::value<std::string>()->default_value("131072"), "bytes per proxy buffer: the most one direction of a connection holds (with --flow-buffers 1), and the most one recv or send moves")
      ("buffers", po::value<std::string>()->default_value("128"), "proxy buffers per worker (power of two); shared by its connections, each held only while its bytes are on their way")
      ("recv", po::value<std::string>()->default_value("single"), "multishot (one multishot recv per direction for the connection's life) or single (one recv per message)")
      ("flow-buffers", po::value<std::string>()->default_value("1"), "buffers one direction of a connection may hold before it stops receiving (bounds memory per slow reader); 2 or more receive while sending")
      ("backlog", po::value<std::string>()->default_value("1024"), "listen backlog")
      ("metrics-listen", po::value<std::string>()->default_value("127.0.0.1:9090"), "ADDR:PORT for /metrics, or none")
      ("control-socket", po::value<std::string>(), "Unix socket PATH for `ringlb ctl PATH connections` and for upgrades")
      ("allow", po::value<std::vector<std::string>>(), "CIDR (repeatable): when given, only clients from these networks are served")
      ("deny", po::value<std::vector<std::string>>(), "CIDR (repeatable): clients from these networks are closed at once (deny wins over allow)")
      ("access-log-format", po::value<std::string>()->default_value("logfmt"), "logfmt (key=value) or json (one object per line, the same fields)")
      ("access-log-interval", po::value<std::string>()->default_value("0s"), "also write a record (event=update: bytes and duration so far) for every connection still open at each interval of its life, at least 1s; 0s: only the record at close (event=close)")
      ("download-rate", po::value<std::string>(), "bytes per second each connection may receive from its backend (KB, KiB, MB, MiB, GB, GiB: \"1MiB\", \"500KB\"); the recv waits for a token bucket, so nothing more is buffered (default: no limit)")
      ("upload-rate", po::value<std::string>(), "bytes per second each connection may send to its backend, as --download-rate (default: no limit)")
      ("log-level", po::value<std::string>()->default_value("info"), "error, warning, info or debug: the least severe line ringlb prints on stderr")
      ("access-log", po::value<std::string>(), "append a line per closed connection (client, backend, times, bytes, why it closed) to PATH, or - for standard output; reopened on SIGHUP for log rotation")
      ("takeover", po::value<std::string>(), "take the listening sockets of the ringlb serving control socket PATH (upgrade without dropping connections)");
  return desc;
}

// Flags that are not settings of the file's top level.
const std::set<std::string> kNotSettings = {"help", "version", "config", "listen", "backend", "takeover"};

std::vector<std::string> texts_of(const po::variable_value& value) {
  if (const auto* list = boost::any_cast<std::vector<std::string>>(&value.value())) return *list;
  return {value.as<std::string>()};
}

// The one cluster and the listeners of a command line (or of a file with neither).
Status from_flags(const po::variables_map& vm, const Defaults& d, const std::string& path, Config* c) {
  Status errors;
  const std::string no_file = path.empty() ? "" : " (and " + path + " has no [[listener]])";
  if (!vm.count("listen")) errors.add(Status::error("no --listen address given" + no_file));
  for (size_t i = 0; vm.count("listen") && i < vm["listen"].as<std::vector<std::string>>().size(); ++i) {
    const std::string& text = vm["listen"].as<std::vector<std::string>>()[i];
    ListenConfig l = d.listener;
    l.name = "listener-" + std::to_string(i + 1);
    l.cluster = "default";
    l.allow = c->allow;
    l.deny = c->deny;
    if (Status s = parse_listen(text, &l); !s.ok()) {
      errors.add(s.prefix("invalid --listen '" + text + "'"));
      continue;
    }
    c->listen.push_back(l);
  }
  if (c->listen.size() > limits::kMaxListeners) {
    errors.add(Status::error("more than " + std::to_string(limits::kMaxListeners) + " --listen addresses"));
  }
  ClusterConfig cluster = d.cluster;
  cluster.name = "default";
  if (!vm.count("backend")) errors.add(Status::error("no --backend given: ringlb needs at least one" + no_file));
  const std::vector<std::string> backends =
      vm.count("backend") ? vm["backend"].as<std::vector<std::string>>() : std::vector<std::string>{};
  for (const std::string& text : backends) {
    BackendConfig b;
    if (Status s = parse_backend(text, &b); !s.ok()) {
      errors.add(s.prefix("invalid --backend '" + text + "'"));
      continue;
    }
    cluster.backends.push_back(b);
  }
  if (cluster.backends.size() > limits::kMaxBackends) {
    errors.add(Status::error("more than " + std::to_string(limits::kMaxBackends) + " --backend addresses"));
  }
  if (!d.queue_timeout_set) cluster.queue_timeout = cluster.connect_timeout;  // HAProxy's default
  for (const Problem& p : check_cluster(cluster)) {
    errors.add(Status::error(p.backend >= 0 ? "invalid --backend '" + backends[static_cast<size_t>(p.backend)] +
                                                  "': " + p.key + " '" + p.value + "' " + p.why
                                            : "invalid value '" + p.value + "' for --" + p.key + ": " + p.why));
  }
  split_names(&cluster);
  c->clusters.push_back(cluster);
  return errors;
}

}  // namespace

Status parse_config(int argc, const char* const* argv, Config* config, std::string* print) {
  const po::options_description desc = describe();
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::ostringstream out;
      out << "usage: ringlb --listen ADDR:PORT --backend ADDR:PORT [options]\n"
          << "       ringlb --config FILE.toml [options]\n"
          << "       ringlb check (--config FILE.toml | options)   (validate, start nothing)\n"
          << "       ringlb ctl PATH connections   (live connections of the ringlb at PATH)\n"
          << "       ringlb ctl PATH backends      (each backend: state, weight, connections, last check failure)\n\n"
          << desc << "\nSignals: SIGTERM/SIGINT drain and exit; SIGHUP re-reads --config.\n";
      if (print != nullptr) *print = out.str();
      return {};
    }
    if (vm.count("version")) {
      if (print != nullptr) *print = std::string("ringlb ") + kVersion + "\n";
      return {};
    }
    po::notify(vm);
  } catch (const po::error& e) {
    return Status::error(e.what());
  }

  Status errors;
  Defaults d = make_defaults();
  TomlFile file;
  std::string path;
  if (vm.count("config")) {
    path = vm["config"].as<std::string>();
    RINGLB_RETURN_IF_ERROR(file.load(path));
    errors.add(file.apply_top(&d));
  }
  // Flags given win over the file's top-level keys (defaulted ones are only --help's text).
  for (const auto& [name, value] : vm) {
    if (value.defaulted() || kNotSettings.count(name)) continue;
    const FlagValue flag(texts_of(value));
    Target target;
    target.top = &d;
    if (Status s = apply_setting(Scope::kTop, name, flag, target); !s.ok()) {
      errors.add(Status::error(name == "allow" || name == "deny"
                                   ? "invalid --" + name + " " + s.message()
                                   : "invalid value '" + flag.text() + "' for --" + name + ": " + s.message()));
    }
  }

  Config c = d.config;
  c.config_file = path;
  if (file.has_services()) {
    for (const char* flag : {"listen", "backend"}) {
      if (vm.count(flag)) {
        errors.add(Status::error(std::string("--") + flag + " cannot be combined with " + path +
                                 ", which has [cluster.NAME] or [[listener]] tables: put them in the file"));
      }
    }
    errors.add(file.build(d, &c));
  } else {
    errors.add(from_flags(vm, d, path, &c));
  }
  if (vm.count("takeover")) {
    c.takeover = vm["takeover"].as<std::string>();
    if (c.takeover.empty() || c.takeover.size() > limits::kMaxUnixPath) {
      errors.add(Status::error("invalid value '" + c.takeover + "' for --takeover: a Unix socket path of 1 to " +
                               std::to_string(limits::kMaxUnixPath) + " bytes"));
    }
  }
  RINGLB_RETURN_IF_ERROR(errors);
  *config = c;
  return {};
}

}  // namespace ringlb
