// ringlb's configuration model, the value syntaxes shared by the command line and the TOML file
// (durations, backends, listen addresses, SNI patterns, names) and their limits. The readers are
// command_line.h (flags, and --config FILE through toml_config.h); settings.h maps each key to
// a field here.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "balancer/maglev.h"
#include "balancer/snapshot.h"
#include "server/access_log/access_log_format.h"
#include "server/base/log_level.h"
#include "server/base/acl.h"
#include "server/base/address.h"
#include "server/base/error.h"
#include "server/config/dns_name.h"
#include "server/config/udp_listen.h"
#include "server/health/check_spec.h"
#include "server/protocol/proxy_protocol.h"

namespace ringlb {

using Millis = std::chrono::milliseconds;

// A configured duration in nanoseconds, the unit of the event loops' clocks.
inline uint64_t to_ns(Millis d) { return static_cast<uint64_t>(d.count()) * 1'000'000ULL; }

// Limits shared by the flags and the file, so that no value wraps anywhere it is stored.
namespace limits {
// Durations: 0 to 24 days (576h). Kept below 2^31 ms, so a duration fits the int32/uint32
// milliseconds the health checker and the snapshot store.
inline constexpr Millis kMaxDuration{24LL * 24 * 3600 * 1000};
inline constexpr uint32_t kMaxWeight = 1000;  // 0 = drained: kept and checked, gets no new clients
inline constexpr uint32_t kMaxConnections = 1'000'000;  // global, per listener, per backend
inline constexpr uint32_t kMaxRiseFall = 100;
inline constexpr unsigned kMaxConnectAttempts = 100;
inline constexpr unsigned kMaxWorkers = 256;
inline constexpr size_t kMaxNameLength = 64;  // cluster and listener names
// Listeners over the life of the process (a reload's new or changed one takes a fresh index),
// clusters, and backends live at once (the registry's sizes: balancer/snapshot.h).
inline constexpr unsigned kMaxListeners = 512;
inline constexpr unsigned kMaxClusters = balancer::BackendRegistry::kMaxClusters;
inline constexpr unsigned kMaxBackends = balancer::BackendRegistry::kCapacity;
inline constexpr size_t kMaxConfigFileBytes = 16u << 20;  // a config file, read whole
inline constexpr size_t kMaxUnixPath = 107;  // sockaddr_un's sun_path, less its NUL
inline constexpr uint32_t kMaxSourceRate = 1'000'000;       // new connections per second/minute
inline constexpr uint32_t kMaxSourceTableSize = 1'000'000;  // sources tracked per listener
inline constexpr uint64_t kMaxRate = 1ULL << 40;  // download-rate, upload-rate: 1024GiB per second
// access-log-interval: shorter would write a line per connection many times a second.
inline constexpr Millis kMinAccessLogInterval{1000};
}  // namespace limits

// Active health-check settings; a backend may override each.
struct HealthConfig {
  Millis interval{2000};  // 0 turns active checks (and passive marking down) off
  Millis timeout{1000};
  uint32_t rise = 2;
  uint32_t fall = 3;
  // What a check sends and expects (check, check-port, check-path, ...; default: tcp).
  health::CheckSettings check;
  // slow-start: a backend that comes up, or is added by a reload, ramps to its weight over this.
  Millis slow_start{0};
};

struct BackendConfig {
  Address address;
  std::string text;  // as written, for logs and metric labels
  uint32_t weight = 1;  // 0 to limits::kMaxWeight; 0 = drained
  uint32_t max_connections = 0;  // 0 = unlimited
  bool backup = false;
  // send-proxy / send-proxy-v2: a PROXY protocol header goes to the backend before any byte.
  ProxyProtocol proxy_protocol = ProxyProtocol::kNone;
  // Per-backend overrides of the cluster's health settings (unset = the cluster's).
  std::optional<Millis> health_interval, health_timeout;
  std::optional<uint32_t> health_rise, health_fall;
  health::CheckSettings check;  // over the cluster's
  std::optional<Millis> slow_start;
  // Never read from the file: the runtime API's state, merged in by discovery::ClusterPublisher.
  balancer::Admin admin = balancer::Admin::kEnabled;
  // Set when the entry is a name to resolve ("db.internal:5432", "srv:_pg._tcp.internal"):
  // `address` is then unset, `text` is the name as written, and each resolved address becomes
  // a backend with these settings and "IP:PORT" as its text (server/discovery/dns_resolver).
  DnsName dns;
  // quic-server-id: the QUIC-LB server ID this backend puts in its connection IDs, as bytes
  // ("" = none); QUIC listeners route to it by that ID (server/protocol/quic.h).
  std::string quic_server_id;
};

// The [resolvers] table: where DNS names are resolved, with c-ares.
struct ResolversConfig {
  std::vector<Address> nameservers;  // empty: those of /etc/resolv.conf
  Millis timeout{1000};              // per try (c-ares doubles it on each round of servers)
  unsigned attempts = 2;             // tries of each server
};

// [cluster.NAME.tls]: ringlb connects to the cluster's backends with TLS (server/tls/client_context.h).
struct TlsClusterConfig {
  std::string sni;                 // the server name sent; empty: none
  bool verify = true;              // the backend's chain (against ca_file) and name
  std::string ca_file;             // empty: the system's store
  std::string cert, key;           // a client certificate (mTLS to the backend), both or neither
  std::vector<std::string> alpn;   // offered in this order; empty: none
  bool operator==(const TlsClusterConfig&) const = default;
};

// One certificate of a terminating listener: its chain and its key, PEM files.
struct TlsCertificateFiles {
  std::string cert, key;
  bool operator==(const TlsCertificateFiles&) const = default;
};

enum class TlsMinVersion : uint8_t { k12, k13 };
enum class TlsClientVerify : uint8_t { kNone, kOptional, kRequired };

// [listener.tls]: the listener ends TLS (server/tls/server_context.h).
// The smallest buffer-size that serves TLS (termination or origination).
inline constexpr unsigned kMinTlsBufferSize = 32768;

struct TlsListenerConfig {
  // Chosen by SNI among their own names; the first serves clients without a match.
  std::vector<TlsCertificateFiles> certificates;
  std::vector<std::string> alpn;   // the server's preference, in this order; empty: none
  TlsMinVersion min_version = TlsMinVersion::k12;
  std::string ciphers;             // TLS 1.2 cipher list; empty: OpenSSL's default
  std::string ciphersuites;        // TLS 1.3 suites; empty: OpenSSL's default
  std::string client_ca;           // the CAs client certificates are verified against
  TlsClientVerify client_verify = TlsClientVerify::kNone;
  Millis handshake_timeout{10000};
  bool session_tickets = true;
  std::string ticket_keys_file;    // HAProxy's tls-ticket-keys format; empty: generated, rotated
  bool operator==(const TlsListenerConfig&) const = default;
};

// A named pool of backends and how to pick among them (a "service" upstream).
struct ClusterConfig {
  std::string name;
  balancer::Policy policy = balancer::Policy::kRoundRobin;
  balancer::HashKey hash_key = balancer::HashKey::kAddr;
  uint32_t maglev_size = balancer::kDefaultMaglevSize;
  HealthConfig health;
  Millis connect_timeout{2000};
  unsigned connect_attempts = 3;  // per client: first try plus retries on other backends
  // HAProxy's timeout queue: a client finding every backend that is up at its max-connections
  // waits this long for a turn, then is closed. 0 = closed at once. Unset in the file or on
  // the command line, it is the cluster's connect timeout, as in HAProxy.
  Millis queue_timeout{2000};
  // send-proxy-client-certificate: a PROXY v2 header to its backends, from a listener that ends
  // TLS, carries the client's certificate (PP2_SUBTYPE_SSL_CLIENT_CERT, DER) besides its CN.
  bool proxy_client_certificate = false;
  std::vector<BackendConfig> backends;
  // Some or all of its backends come from discovery (DNS names, an etcd prefix) at run time, so
  // it may have none: discovery::ClusterPublisher merges them with `backends` (server/discovery).
  bool discovered = false;
  // Backends written as names (BackendConfig::dns set), kept apart from `backends` (addresses
  // only); any name makes the cluster `discovered`. Each is re-resolved at its records' TTL,
  // within these bounds, and a failed lookup keeps the last good set for resolve_hold.
  std::vector<BackendConfig> names;
  Millis resolve_min_interval{1000};
  Millis resolve_max_interval{300000};
  Millis resolve_hold{300000};
  // discovery = "etcd": the keys under this prefix (each a JSON backend) join `backends`
  // (server/discovery/etcd_discovery.h). Empty: no etcd.
  std::string etcd_prefix;
  std::optional<TlsClusterConfig> tls;  // [cluster.NAME.tls]: origination
  // Bandwidth limits per connection through this cluster, bytes per second (0: none): to protect
  // its backends whatever listener sends clients here. A listener's own may be lower.
  uint64_t download_rate = 0;  // backend to client
  uint64_t upload_rate = 0;    // client to backend
};

// The global [etcd] table: how every cluster with discovery = "etcd" reaches etcd's v3 JSON
// gateway. Unused while no cluster names a prefix.
struct EtcdConfig {
  std::vector<std::string> endpoints;  // "http://10.0.0.1:2379", tried in order, failing over
  std::string ca_file, cert_file, key_file;  // TLS: the CA to verify etcd with, our client cert
  std::string user, password;                // etcd's auth (/v3/auth/authenticate), if set
  Millis dial_timeout{2000};     // a TCP (and TLS) connect to one endpoint
  Millis request_timeout{5000};  // a whole range or authenticate request
  Millis reconnect_min{200}, reconnect_max{5000};  // backoff between failed attempts
  bool operator==(const EtcdConfig&) const = default;
};

// connection-rate-per-source: "N/s" or "N/m"; count 0 = no rate limit.
struct SourceRate {
  uint32_t count = 0;
  Millis per{1000};
  bool operator==(const SourceRate&) const = default;
};

// Moves the entries of c->backends that are names into c->names (and marks it discovered).
void split_names(ClusterConfig* c);

// One SNI route of a listener: a TLS ClientHello naming `server_name` goes to `cluster`.
struct SniRoute {
  std::string server_name;  // lower case; exact ("a.example.com") or one leading "*." label
  std::string cluster;
};

struct ListenConfig {
  Address address;
  ListenProtocol protocol = ListenProtocol::kTcp;  // protocol = "tcp" or "udp"
  UdpListenConfig udp;  // a UDP listener's own settings (udp_listen.h)
  // Unique. A [[listener]] without a name is "listener-N" (N from 1, in file order), and so is
  // every --listen.
  std::string name;
  // Where its clients go: one cluster, or by the TLS SNI of the client's first bytes.
  std::string cluster;            // empty when sni_routes is used
  std::vector<SniRoute> sni_routes;
  std::string sni_default;        // cluster for no or unmatched SNI; "" = close the client
  Millis tls_inspect_timeout{5000};  // how long to wait for a whole ClientHello
  // accept-proxy: each client starts with a PROXY protocol header (ringlb is behind another
  // proxy or load balancer); its addresses stand for the connection's own.
  bool accept_proxy = false;
  // The header is honoured only from these sources; empty = from anyone.
  std::vector<Cidr> trusted_proxies;
  Millis proxy_header_timeout{5000};
  // v6only (HAProxy's name): an IPv6 listener takes IPv6 clients only. Without it, [::] is
  // dual-stack and takes IPv4 clients too (as ::ffff:a.b.c.d).
  bool v6only = false;
  // Source-address lists that apply to this listener: its own, or else the global ones (the
  // global lists are copied in, so these are always the effective ones).
  std::vector<Cidr> allow;
  std::vector<Cidr> deny;
  unsigned max_connections = 0;  // 0 = only the global limit
  // Per-source limits (server/limits/source_table.h), keyed on the client's address (the PROXY
  // header's source where one is honoured). 0 = off.
  unsigned max_connections_per_source = 0;
  SourceRate connection_rate_per_source;  // new connections per source: count per period
  unsigned connection_burst_per_source = 0;  // new connections at once; 0 = the rate's count
  unsigned source_table_size = 16384;        // sources tracked, then the least recently seen idle one goes
  // IPv6 sources are keyed by this prefix (one host holds a /64); IPv4 by the whole address.
  unsigned source_ipv6_prefix = 64;
  // Clients still sending their PROXY header or ClientHello (before anything is routed): at most
  // this many on the listener (0 = only max-connections) and from one source (0 = no bound).
  unsigned max_handshakes = 0;
  unsigned max_handshakes_per_source = 64;
  bool source_limited() const { return max_connections_per_source != 0 || connection_rate_per_source.count != 0; }
  // Overrides of the global timeouts (unset = Config's; a UDP listener's idle timeout is
  // kUdpIdleTimeout when unset).
  std::optional<Millis> idle_timeout, fin_timeout, max_connection_duration;
  std::optional<TlsListenerConfig> tls;  // [listener.tls]: termination
  // Bandwidth limits per connection, bytes per second (0: none); the cluster's may be lower.
  uint64_t download_rate = 0;  // backend to client (nginx's proxy_download_rate)
  uint64_t upload_rate = 0;    // client to backend (proxy_upload_rate)
};

struct Config {
  std::vector<ListenConfig> listen;
  // Every cluster a listener may name, in file order. From the command line alone: one,
  // "default", made of the --backend flags and the cluster flags.
  std::vector<ClusterConfig> clusters;

  unsigned workers = 1;
  Millis idle_timeout{300000};
  // Once either side has half-closed (sent FIN), the connection is closed after this long
  // without traffic: half-closed sockets must not linger until the idle timeout.
  Millis fin_timeout{30000};
  Millis drain_timeout{10000};
  // Envoy's max_downstream_connection_duration: long-lived connections are closed after this
  // long, busy or not, so clients reconnect and spread over backends added since. 0 = never.
  Millis max_connection_duration{0};
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
  unsigned buffer_size = 131072;
  unsigned buffers_per_worker = 128;
  // --recv multishot: one multishot recv per direction stays armed for the connection's life
  // (no SQE, and no poll to arm, per message); single: one recv per message, as liburing's proxy.
  bool recv_multishot = false;
  // --flow-buffers: buffers one direction may hold before its recv stops (the slow-reader bound);
  // 2 or more lets a recv run while the previous buffer is being sent.
  unsigned flow_buffers = 1;
  unsigned backlog = 1024;
  bool metrics_enabled = true;
  Address metrics_listen;  // 127.0.0.1:9090 unless set
  std::string config_file;
  std::string control_socket;  // --control-socket PATH ("" = none)
  std::string access_log;      // --access-log PATH ("" = none, "-" = standard output)
  AccessLogFormat access_log_format = AccessLogFormat::kLogfmt;  // --access-log-format
  // --access-log-interval: a record (event=update) for every connection still open at each
  // interval of its life; 0 = only the record at close.
  Millis access_log_interval{0};
  LogLevel log_level = LogLevel::kInfo;  // --log-level: the least severe stderr line printed
  // --allow / --deny: source addresses refused before any backend is tried. Reloadable. Every
  // listener without lists of its own has copies of these.
  std::vector<Cidr> allow;
  std::vector<Cidr> deny;
  std::string takeover;        // --takeover PATH: take the listeners of the ringlb serving PATH
  EtcdConfig etcd;
  ResolversConfig resolvers;
};

// A whole number from `min` to `max`, digits only (no sign, no spaces).
bool parse_uint(const std::string& text, uint64_t min, uint64_t max, uint64_t* out);

// "250ms", "5s", "1m", "2h", up to limits::kMaxDuration (0 included: what a 0 means is each
// setting's rule, settings.h).
Status parse_duration(const std::string& text, Millis* out);

// A duration refused at 0 (settings.h: 0 turns off only what can be off).
inline constexpr const char* kAboveZero = "must be above zero";

// "N/s" or "N/m", N from 0 to limits::kMaxSourceRate.
Status parse_source_rate(const std::string& text, SourceRate* out);

// A bandwidth in bytes per second: digits, then optionally a unit: KB (1000), KiB (1024), MB,
// MiB, GB or GiB ("500KB", "1MiB"). Above zero, up to limits::kMaxRate.
Status parse_rate(const std::string& text, uint64_t* out);
// What parse_rate takes, for messages.
inline constexpr const char* kRateSyntax =
    "a rate above zero in bytes per second: a whole number, or a string with a unit such as \"500KB\" or \"1MiB\" "
    "(KB, KiB, MB, MiB, GB, GiB)";

// "ADDR:PORT" (or "HOST:PORT", "srv:NAME": a name to resolve)"[,weight=N][,max-connections=N][,backup][,send-proxy|,send-proxy-v2]
// [,health-interval=D][,health-timeout=D][,rise=N][,fall=N]".
Status parse_backend(const std::string& text, BackendConfig* out);

// A --listen value, "ADDR:PORT[,accept-proxy][,v6only]", onto *out (its other fields kept).
Status parse_listen(const std::string& text, ListenConfig* out);

// "addr" or "addr,port".
Status parse_hash_key(const std::string& text, balancer::HashKey* out);

// "none", "auto" (every CPU this process may use) or "CPU[,CPU...]".
Status parse_cpu_affinity(const std::string& text, std::vector<int>* cpus);

// A cluster or listener name: 1 to limits::kMaxNameLength of A-Z a-z 0-9 . _ -, starting with
// a letter or digit (it ends up in logs and metric labels).
Status check_name(const std::string& name);

// An SNI route's server name: a DNS name ("a.example.com") or one with a leading wildcard label
// ("*.example.com", which matches every name under example.com at any depth, as SniRoutes
// does). Stored lower case in *out.
Status parse_sni_pattern(const std::string& text, std::string* out);

}  // namespace ringlb
