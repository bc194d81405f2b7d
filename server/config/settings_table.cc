// The settings table. tests/docs/man_test.sh reads every entry's name and alias from this file
// and checks that ringlb.toml(5) has each.
#include "server/config/settings_table.h"

#include "server/config/setters.h"
#include "server/config/udp_config.h"
#include "server/protocol/quic.h"

namespace ringlb::settings_table {
namespace {

using namespace setters;

constexpr uint64_t kMaxConns = limits::kMaxConnections;
constexpr uint64_t kMaxRf = limits::kMaxRiseFall;

// A const table of every setting. Lambdas rather than member pointers: several settings parse
// text into something other than their field's type. Each duration says what its 0 means
// (setters.h: Zero).
const Entry kEntries[] = {
    // Process-wide: top level and flags only.
    {Level::kGlobal, "workers", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 1, limits::kMaxWorkers, &t.top->config.workers); }},
    {Level::kGlobal, "buffer-size", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 1024, 1 << 20, &t.top->config.buffer_size); }},
    {Level::kGlobal, "buffers", "buffers-per-worker", [](const Value& v, const Target& t) {
       unsigned n = 0;
       RINGLB_RETURN_IF_ERROR(set_uint(v, 8, 32768, &n));
       if ((n & (n - 1)) != 0) return Status::error("must be a power of two");
       t.top->config.buffers_per_worker = n;
       return Status(); }},
    {Level::kGlobal, "backlog", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 1, 65535, &t.top->config.backlog); }},
    {Level::kGlobal, "max-connections", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 1, kMaxConns, &t.top->config.max_connections); }},
    {Level::kGlobal, "metrics-listen", nullptr, [](const Value& v, const Target& t) {
       std::string text, why;
       RINGLB_RETURN_IF_ERROR(v.get_string(&text, "ADDR:PORT or none"));
       Config& c = t.top->config;
       c.metrics_enabled = text != "none";
       if (c.metrics_enabled && !parse_address(text, &c.metrics_listen, &why)) return Status::error(why + " (or none)");
       return Status(); }},
    {Level::kGlobal, "metrics", nullptr, [](const Value& v, const Target& t) {
       return set_bool(v, &t.top->config.metrics_enabled); }},
    {Level::kGlobal, "access-log", nullptr, [](const Value& v, const Target& t) {
       return set_path(v, "a PATH (or - for standard output)", &t.top->config.access_log); }},
    {Level::kGlobal, "access-log-format", nullptr, [](const Value& v, const Target& t) {
       std::string text;
       RINGLB_RETURN_IF_ERROR(v.get_string(&text, "logfmt or json"));
       if (!parse_access_log_format(text, &t.top->config.access_log_format)) return Status::error("expected logfmt or json");
       return Status(); }},
    // 0: no interim records, only the one at close.
    {Level::kGlobal, "access-log-interval", nullptr, [](const Value& v, const Target& t) {
       return set_access_log_interval(v, &t.top->config.access_log_interval); }},
    {Level::kGlobal, "log-level", nullptr, [](const Value& v, const Target& t) {
       std::string text;
       RINGLB_RETURN_IF_ERROR(v.get_string(&text, "error, warning, info or debug"));
       if (!parse_log_level(text, &t.top->config.log_level)) return Status::error("expected error, warning, info or debug");
       return Status(); }},
    {Level::kGlobal, "recv", nullptr, [](const Value& v, const Target& t) {
       std::string text;
       RINGLB_RETURN_IF_ERROR(get_word(v, "multishot or single", {"multishot", "single"}, &text));
       t.top->config.recv_multishot = text == "multishot";
       return Status(); }},
    {Level::kGlobal, "flow-buffers", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 1, 64, &t.top->config.flow_buffers); }},
    {Level::kGlobal, "control-socket", nullptr, [](const Value& v, const Target& t) {
       RINGLB_RETURN_IF_ERROR(set_path(v, "a PATH", &t.top->config.control_socket));
       return check_unix_path(t.top->config.control_socket); }},
    {Level::kGlobal, "cpu-affinity", nullptr, [](const Value& v, const Target& t) {
       std::string text;
       RINGLB_RETURN_IF_ERROR(v.get_string(&text, "none, auto or \"CPU[,CPU...]\""));
       return parse_cpu_affinity(text, &t.top->config.cpus); }},
    {Level::kGlobal, "acceptor-scheduling", nullptr, [](const Value& v, const Target& t) {
       return set_scheduling(v, &t.top->config.acceptor_batch); }},
    {Level::kGlobal, "iowq-scheduling", nullptr, [](const Value& v, const Target& t) {
       return set_scheduling(v, &t.top->config.iowq_batch); }},
    // 0: no drain, the connections are closed at once.
    {Level::kGlobal, "drain-timeout", nullptr, [](const Value& v, const Target& t) {
       return set_duration(v, Zero::kOff, &t.top->config.drain_timeout); }},
    {Level::kGlobal, "idle-timeout", nullptr, [](const Value& v, const Target& t) {
       return get_idle_timeout(v, &t.top->config.idle_timeout); }},
    {Level::kGlobal, "fin-timeout", nullptr, [](const Value& v, const Target& t) {
       return set_duration(v, Zero::kRefused, &t.top->config.fin_timeout); }},
    // 0: no maximum.
    {Level::kGlobal, "max-connection-duration", nullptr, [](const Value& v, const Target& t) {
       return set_duration(v, Zero::kOff, &t.top->config.max_connection_duration); }},
    {Level::kGlobal, "allow", nullptr, [](const Value& v, const Target& t) {
       return set_cidrs(v, &t.top->config.allow); }},
    {Level::kGlobal, "deny", nullptr, [](const Value& v, const Target& t) {
       return set_cidrs(v, &t.top->config.deny); }},

    // A cluster's, or at the top level every cluster's default.
    {Level::kCluster, "balance", "policy", [](const Value& v, const Target& t) {
       std::string text;
       RINGLB_RETURN_IF_ERROR(v.get_string(&text, "roundrobin, leastconn, random2 or maglev"));
       if (!balancer::parse_policy(text, &t.cluster->policy)) {
         return Status::error("expected roundrobin, leastconn, random2 or maglev");
       }
       return Status(); }},
    {Level::kCluster, "hash-key", nullptr, [](const Value& v, const Target& t) {
       std::string text;
       RINGLB_RETURN_IF_ERROR(v.get_string(&text, "addr or addr,port"));
       return parse_hash_key(text, &t.cluster->hash_key); }},
    {Level::kCluster, "maglev-table-size", "maglev-size", [](const Value& v, const Target& t) {
       return set_uint(v, 2, 10'000'019, &t.cluster->maglev_size); }},
    // 0: no active checks (nor passive marking down).
    {Level::kCluster, "health-interval", nullptr, [](const Value& v, const Target& t) {
       return set_duration(v, Zero::kOff, &t.cluster->health.interval); }},
    {Level::kCluster, "health-timeout", nullptr, [](const Value& v, const Target& t) {
       return set_duration(v, Zero::kRefused, &t.cluster->health.timeout); }},
    {Level::kCluster, "health-rise", "rise", [](const Value& v, const Target& t) {
       return set_uint(v, 1, kMaxRf, &t.cluster->health.rise); }},
    {Level::kCluster, "health-fall", "fall", [](const Value& v, const Target& t) {
       return set_uint(v, 1, kMaxRf, &t.cluster->health.fall); }},
    {Level::kCluster, "connect-timeout", nullptr, [](const Value& v, const Target& t) {
       return set_duration(v, Zero::kRefused, &t.cluster->connect_timeout); }},
    {Level::kCluster, "connect-attempts", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 1, limits::kMaxConnectAttempts, &t.cluster->connect_attempts); }},
    {Level::kClusterOnly, "discovery", nullptr, [](const Value& v, const Target& t) {
       std::string text;
       RINGLB_RETURN_IF_ERROR(get_word(v, "etcd or none", {"etcd", "none"}, &text));
       t.cluster->discovered = text == "etcd";
       return Status(); }},
    // A cluster's own bandwidth limits, to protect its backends (at the top level these keys are
    // the listeners' default: below).
    {Level::kClusterOnly, "download-rate", nullptr, [](const Value& v, const Target& t) {
       return set_rate(v, &t.cluster->download_rate); }},
    {Level::kClusterOnly, "upload-rate", nullptr, [](const Value& v, const Target& t) {
       return set_rate(v, &t.cluster->upload_rate); }},
    {Level::kClusterOnly, "etcd-prefix", nullptr, [](const Value& v, const Target& t) {
       std::string text;
       RINGLB_RETURN_IF_ERROR(v.get_string(&text, "a key prefix such as \"/ringlb/web/\""));
       // A prefix that is not a whole "directory" would also take /ringlb/web2/ for /ringlb/web.
       if (text.empty() || text.back() != '/') return Status::error("must end with '/' (\"/ringlb/web/\")");
       t.cluster->etcd_prefix = text;
       return Status(); }},
    // 0: no queueing, a client finding every backend full is closed at once.
    {Level::kCluster, "queue-timeout", nullptr, [](const Value& v, const Target& t) {
       return set_duration(v, Zero::kOff, &t.cluster->queue_timeout); }},
    {Level::kCluster, "send-proxy-client-certificate", nullptr, [](const Value& v, const Target& t) {
       return set_bool(v, &t.cluster->proxy_client_certificate); }},
    {Level::kCluster, "check", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check", &t.cluster->health.check); }},
    {Level::kCluster, "check-port", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-port", &t.cluster->health.check); }},
    {Level::kCluster, "check-method", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-method", &t.cluster->health.check); }},
    {Level::kCluster, "check-path", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-path", &t.cluster->health.check); }},
    {Level::kCluster, "check-host", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-host", &t.cluster->health.check); }},
    {Level::kCluster, "check-status", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-status", &t.cluster->health.check); }},
    {Level::kCluster, "check-body", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-body", &t.cluster->health.check); }},
    {Level::kCluster, "check-send", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-send", &t.cluster->health.check); }},
    {Level::kCluster, "check-expect", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-expect", &t.cluster->health.check); }},
    {Level::kCluster, "check-expect-within", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-expect-within", &t.cluster->health.check); }},
    {Level::kCluster, "check-sni", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-sni", &t.cluster->health.check); }},
    // 0: no slow start, a backend gets its whole weight at once.
    {Level::kCluster, "slow-start", nullptr, [](const Value& v, const Target& t) {
       return set_duration(v, Zero::kOff, &t.cluster->health.slow_start); }},
    // DNS names: re-resolved at their TTL, within these bounds (server/discovery/dns_resolver).
    {Level::kCluster, "resolve-min-interval", nullptr, [](const Value& v, const Target& t) {
       return set_duration(v, Zero::kRefused, &t.cluster->resolve_min_interval); }},
    {Level::kCluster, "resolve-max-interval", nullptr, [](const Value& v, const Target& t) {
       return set_duration(v, Zero::kRefused, &t.cluster->resolve_max_interval); }},
    // 0: no hold, a failed lookup withdraws the name's addresses at once.
    {Level::kCluster, "resolve-hold", nullptr, [](const Value& v, const Target& t) {
       return set_duration(v, Zero::kOff, &t.cluster->resolve_hold); }},

    // A listener's, or at the top level every listener's default.
    {Level::kListenerDefault, "accept-proxy", nullptr, [](const Value& v, const Target& t) {
       return set_bool(v, &t.listener->accept_proxy); }},
    {Level::kListenerDefault, "trusted-proxies", nullptr, [](const Value& v, const Target& t) {
       return set_cidrs(v, &t.listener->trusted_proxies); }},
    {Level::kListenerDefault, "proxy-header-timeout", nullptr, [](const Value& v, const Target& t) {
       return set_duration(v, Zero::kRefused, &t.listener->proxy_header_timeout); }},
    {Level::kListenerDefault, "max-connections-per-source", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 0, kMaxConns, &t.listener->max_connections_per_source); }},
    {Level::kListenerDefault, "connection-rate-per-source", nullptr, [](const Value& v, const Target& t) {
       std::string text;
       RINGLB_RETURN_IF_ERROR(v.get_string(&text, "a rate such as \"10/s\""));
       return parse_source_rate(text, &t.listener->connection_rate_per_source); }},
    {Level::kListenerDefault, "connection-burst-per-source", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 0, limits::kMaxSourceRate, &t.listener->connection_burst_per_source); }},
    {Level::kListenerDefault, "source-table-size", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 1, limits::kMaxSourceTableSize, &t.listener->source_table_size); }},
    {Level::kListenerDefault, "tls-inspect-timeout", nullptr, [](const Value& v, const Target& t) {
       return set_duration(v, Zero::kRefused, &t.listener->tls_inspect_timeout); }},
    {Level::kListenerDefault, "source-ipv6-prefix", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 1, 128, &t.listener->source_ipv6_prefix); }},
    {Level::kListenerDefault, "max-handshakes", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 0, kMaxConns, &t.listener->max_handshakes); }},
    {Level::kListenerDefault, "max-handshakes-per-source", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 0, kMaxConns, &t.listener->max_handshakes_per_source); }},
    // Per connection; the cluster's, where it has its own, may be lower (the lower applies).
    {Level::kListenerDefault, "download-rate", nullptr, [](const Value& v, const Target& t) {
       return set_rate(v, &t.listener->download_rate); }},
    {Level::kListenerDefault, "upload-rate", nullptr, [](const Value& v, const Target& t) {
       return set_rate(v, &t.listener->upload_rate); }},

    // A listener's own (the top-level keys of the same names are the global settings).
    {Level::kListener, "v6only", nullptr, [](const Value& v, const Target& t) {
       return set_bool(v, &t.listener->v6only); }},
    {Level::kListener, "allow", nullptr, [](const Value& v, const Target& t) {
       return set_cidrs(v, &t.listener->allow); }},
    {Level::kListener, "deny", nullptr, [](const Value& v, const Target& t) {
       return set_cidrs(v, &t.listener->deny); }},
    {Level::kListener, "max-connections", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 0, kMaxConns, &t.listener->max_connections); }},
    {Level::kListener, "idle-timeout", nullptr, [](const Value& v, const Target& t) {
       Millis d{};
       RINGLB_RETURN_IF_ERROR(get_idle_timeout(v, &d));
       t.listener->idle_timeout = d;
       return Status(); }},
    {Level::kListener, "fin-timeout", nullptr, [](const Value& v, const Target& t) {
       return set_optional_duration(v, Zero::kRefused, &t.listener->fin_timeout); }},
    {Level::kListener, "max-connection-duration", nullptr, [](const Value& v, const Target& t) {
       return set_optional_duration(v, Zero::kOff, &t.listener->max_connection_duration); }},
    // A UDP listener's (udp_listen.h); udp_config.h refuses them on a TCP listener.
    {Level::kListener, "protocol", nullptr, [](const Value& v, const Target& t) {
       std::string text;
       RINGLB_RETURN_IF_ERROR(v.get_string(&text, "tcp or udp"));
       if (!parse_listen_protocol(text, &t.listener->protocol)) return Status::error("expected tcp or udp");
       return Status(); }},
    {Level::kListener, "responses", nullptr, [](const Value& v, const Target& t) {
       uint32_t n = 0;
       RINGLB_RETURN_IF_ERROR(set_uint(v, 0, limits::kMaxResponses, &n));
       t.listener->udp.responses = n;
       return Status(); }},
    {Level::kListener, "max-flows", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 1, limits::kMaxFlows, &t.listener->udp.max_flows); }},
    {Level::kListener, "per-datagram", nullptr, [](const Value& v, const Target& t) {
       return set_bool(v, &t.listener->udp.per_datagram); }},
    {Level::kListener, "quic", nullptr, [](const Value& v, const Target& t) {
       return set_bool(v, &t.listener->udp.quic); }},
    {Level::kListener, "quic-server-id-length", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 1, limits::kMaxQuicServerIdLength, &t.listener->udp.quic_server_id_length); }},

    // A backend table's (the same settings as parse_backend's ",key=value" suffixes).
    {Level::kBackend, "quic-server-id", nullptr, [](const Value& v, const Target& t) {
       std::string text;
       RINGLB_RETURN_IF_ERROR(v.get_string(&text, "a server ID such as \"0x0001\""));
       return quic::parse_server_id(text, &t.backend->quic_server_id); }},
    {Level::kBackend, "weight", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 0, limits::kMaxWeight, &t.backend->weight); }},
    {Level::kBackend, "max-connections", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 0, kMaxConns, &t.backend->max_connections); }},
    {Level::kBackend, "backup", nullptr, [](const Value& v, const Target& t) {
       return set_bool(v, &t.backend->backup); }},
    {Level::kBackend, "send-proxy", nullptr, [](const Value& v, const Target& t) {
       std::string text;
       RINGLB_RETURN_IF_ERROR(get_word(v, "\"v1\", \"v2\" or \"none\"", {"v1", "v2", "none"}, &text));
       t.backend->proxy_protocol = text == "v1"   ? ProxyProtocol::kV1
                                   : text == "v2" ? ProxyProtocol::kV2
                                                  : ProxyProtocol::kNone;
       return Status(); }},
    {Level::kBackend, "health-interval", nullptr, [](const Value& v, const Target& t) {
       return set_optional_duration(v, Zero::kOff, &t.backend->health_interval); }},
    {Level::kBackend, "health-timeout", nullptr, [](const Value& v, const Target& t) {
       return set_optional_duration(v, Zero::kRefused, &t.backend->health_timeout); }},
    {Level::kBackend, "rise", "health-rise", [](const Value& v, const Target& t) {
       uint32_t n = 0;
       RINGLB_RETURN_IF_ERROR(set_uint(v, 1, kMaxRf, &n));
       t.backend->health_rise = n;
       return Status(); }},
    {Level::kBackend, "fall", "health-fall", [](const Value& v, const Target& t) {
       uint32_t n = 0;
       RINGLB_RETURN_IF_ERROR(set_uint(v, 1, kMaxRf, &n));
       t.backend->health_fall = n;
       return Status(); }},
    {Level::kBackend, "check", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check", &t.backend->check); }},
    {Level::kBackend, "check-port", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-port", &t.backend->check); }},
    {Level::kBackend, "check-method", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-method", &t.backend->check); }},
    {Level::kBackend, "check-path", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-path", &t.backend->check); }},
    {Level::kBackend, "check-host", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-host", &t.backend->check); }},
    {Level::kBackend, "check-status", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-status", &t.backend->check); }},
    {Level::kBackend, "check-body", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-body", &t.backend->check); }},
    {Level::kBackend, "check-send", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-send", &t.backend->check); }},
    {Level::kBackend, "check-expect", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-expect", &t.backend->check); }},
    {Level::kBackend, "check-expect-within", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-expect-within", &t.backend->check); }},
    {Level::kBackend, "check-sni", nullptr, [](const Value& v, const Target& t) {
       return set_check(v, "check-sni", &t.backend->check); }},
    {Level::kBackend, "slow-start", nullptr, [](const Value& v, const Target& t) {
       return set_optional_duration(v, Zero::kOff, &t.backend->slow_start); }},

    // The [etcd] table.
    {Level::kEtcd, "endpoints", nullptr, [](const Value& v, const Target& t) {
       std::vector<std::string> urls;
       RINGLB_RETURN_IF_ERROR(v.get_strings(&urls));
       if (urls.empty()) return Status::error("expected one or more URLs");
       for (const std::string& u : urls) RINGLB_RETURN_IF_ERROR(check_endpoint(u));
       t.etcd->endpoints = urls;
       return Status(); }},
    {Level::kEtcd, "ca-file", nullptr, [](const Value& v, const Target& t) {
       return set_path(v, "a PATH", &t.etcd->ca_file); }},
    {Level::kEtcd, "cert-file", nullptr, [](const Value& v, const Target& t) {
       return set_path(v, "a PATH", &t.etcd->cert_file); }},
    {Level::kEtcd, "key-file", nullptr, [](const Value& v, const Target& t) {
       return set_path(v, "a PATH", &t.etcd->key_file); }},
    {Level::kEtcd, "user", nullptr, [](const Value& v, const Target& t) {
       return set_path(v, "a user name", &t.etcd->user); }},
    {Level::kEtcd, "password", nullptr, [](const Value& v, const Target& t) {
       return v.get_string(&t.etcd->password, "a string"); }},
    {Level::kEtcd, "dial-timeout", nullptr, [](const Value& v, const Target& t) {
       return set_duration(v, Zero::kRefused, &t.etcd->dial_timeout); }},
    {Level::kEtcd, "request-timeout", nullptr, [](const Value& v, const Target& t) {
       return set_duration(v, Zero::kRefused, &t.etcd->request_timeout); }},
    {Level::kEtcd, "reconnect-min", nullptr, [](const Value& v, const Target& t) {
       return set_duration(v, Zero::kRefused, &t.etcd->reconnect_min); }},
    {Level::kEtcd, "reconnect-max", nullptr, [](const Value& v, const Target& t) {
       return set_duration(v, Zero::kRefused, &t.etcd->reconnect_max); }},
    // The [resolvers] table (top-level file only).
    {Level::kResolvers, "nameservers", nullptr, [](const Value& v, const Target& t) {
       std::vector<std::string> texts;
       RINGLB_RETURN_IF_ERROR(v.get_strings(&texts));
       std::vector<Address> list(texts.size());
       for (size_t i = 0; i < texts.size(); ++i) RINGLB_RETURN_IF_ERROR(parse_nameserver(texts[i], &list[i]));
       t.top->config.resolvers.nameservers = list;
       return Status(); }},
    {Level::kResolvers, "timeout", nullptr, [](const Value& v, const Target& t) {
       Millis d{};
       RINGLB_RETURN_IF_ERROR(get_duration(v, Zero::kRefused, &d));
       if (d > Millis{60000}) return Status::error("must be at most 60s");
       t.top->config.resolvers.timeout = d;
       return Status(); }},
    {Level::kResolvers, "attempts", nullptr, [](const Value& v, const Target& t) {
       return set_uint(v, 1, 10, &t.top->config.resolvers.attempts); }},
};

}  // namespace

std::span<const Entry> entries() { return kEntries; }

}  // namespace ringlb::settings_table
