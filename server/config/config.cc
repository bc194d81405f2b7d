#include "server/config/config.h"

#include <sched.h>
#include <sys/socket.h>

#include <cctype>
#include <charconv>
#include <cstring>
#include <sstream>

namespace ringlb {
namespace {

// One DNS label: 1 to 63 of a-z 0-9 -, not starting or ending with '-'.
bool valid_label(const std::string& label) {
  if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
  for (char ch : label) {
    if (!(islower(static_cast<unsigned char>(ch)) || isdigit(static_cast<unsigned char>(ch)) || ch == '-')) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool parse_uint(const std::string& text, uint64_t min, uint64_t max, uint64_t* out) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min ||
      value > max) {
    return false;
  }
  *out = value;
  return true;
}

Status parse_duration(const std::string& text, Millis* out) {
  size_t digits = 0;
  while (digits < text.size() && isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  uint64_t value = 0;
  // 2^40 of any unit is far above the limit, and cannot overflow once scaled (2^40 h < 2^63 ms).
  if (digits == 0 || !parse_uint(text.substr(0, digits), 0, 1ULL << 40, &value)) {
    return Status::error("expected a duration such as 250ms, 5s, 1m");
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
    return Status::error(unit.empty() ? "a duration needs a unit: 250ms, 5s, 1m, 1h"
                                      : "unknown unit '" + unit + "' (use ms, s, m, h)");
  }
  if (value * scale > static_cast<uint64_t>(limits::kMaxDuration.count())) {
    return Status::error("a duration may be at most 576h (24 days)");
  }
  *out = Millis(static_cast<int64_t>(value * scale));
  return {};
}

Status parse_source_rate(const std::string& text, SourceRate* out) {
  const size_t slash = text.find('/');
  uint64_t count = 0;
  const std::string unit = slash == std::string::npos ? "" : text.substr(slash + 1);
  if (slash == std::string::npos || (unit != "s" && unit != "m") ||
      !parse_uint(text.substr(0, slash), 0, limits::kMaxSourceRate, &count)) {
    return Status::error("expected N/s or N/m (new connections per second or minute), N from 0 to " +
                         std::to_string(limits::kMaxSourceRate));
  }
  out->count = static_cast<uint32_t>(count);
  out->per = Millis(unit == "s" ? 1000 : 60'000);
  return {};
}

Status parse_rate(const std::string& text, uint64_t* out) {
  struct Unit {
    const char* name;
    uint64_t bytes;
  };
  static constexpr Unit kUnits[] = {{"", 1},           {"KB", 1000},       {"KiB", 1024},
                                    {"MB", 1000000},   {"MiB", 1 << 20},   {"GB", 1000000000},
                                    {"GiB", 1ULL << 30}};
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const std::string unit = text.substr(digits);
  uint64_t n = 0;
  for (const Unit& u : kUnits) {
    if (unit != u.name) continue;
    if (digits == 0 || !parse_uint(text.substr(0, digits), 0, limits::kMaxRate, &n)) break;
    if (n == 0) return Status::error("must be above zero (leave the key out for no limit)");
    if (n > limits::kMaxRate / u.bytes) break;
    *out = n * u.bytes;
    return {};
  }
  return Status::error(std::string("expected ") + kRateSyntax + ", at most 1024GiB");
}

Status parse_backend(const std::string& text, BackendConfig* out) {
  std::stringstream parts(text);
  std::string item;
  std::getline(parts, item, ',');
  BackendConfig backend;
  backend.text = item;
  if (std::string error; !parse_backend_address(item, &backend.address, &error)) {
    // Not an address: a name to resolve, unless it is a mistyped address (or unix: path), whose
    // message stays.
    if (item.rfind("unix:", 0) == 0) return Status::error(error);
    RINGLB_RETURN_IF_ERROR(parse_dns_name(item, &backend.dns));
    if (backend.dns.kind == DnsName::Kind::kNone) return Status::error(error);
    backend.address = Address{};
  }
  const bool srv = backend.dns.kind == DnsName::Kind::kSrv;
  if (backend.dns.kind == DnsName::Kind::kNone && backend.address.family() != AF_UNIX &&
      backend.address.port() == 0) {
    return Status::error("backend port 0 is not connectable");
  }
  while (std::getline(parts, item, ',')) {
    uint64_t value = 0;
    if (item == "backup") {
      backend.backup = true;
    } else if (item == "send-proxy" || item == "send-proxy-v2") {
      backend.proxy_protocol = item == "send-proxy" ? ProxyProtocol::kV1 : ProxyProtocol::kV2;
    } else if (item.rfind("weight=", 0) == 0) {
      if (srv) return Status::error("an srv: backend takes its weights from the SRV records (no weight=)");
      if (!parse_uint(item.substr(7), 0, limits::kMaxWeight, &value)) {
        return Status::error("weight '" + item.substr(7) + "' must be 0 (drained) to " +
                             std::to_string(limits::kMaxWeight));
      }
      backend.weight = static_cast<uint32_t>(value);
    } else if (item.rfind("health-interval=", 0) == 0 || item.rfind("health-timeout=", 0) == 0) {
      Millis d{};
      const size_t eq = item.find('=');
      const bool interval = item[7] == 'i';
      Status s = parse_duration(item.substr(eq + 1), &d);
      // The settings table's rule for 0 (settings.h): checks can be off, their timeout cannot.
      if (s.ok() && !interval && d.count() == 0) s = Status::error(kAboveZero);
      RINGLB_RETURN_IF_ERROR(s.prefix(item.substr(0, eq) + " '" + item.substr(eq + 1) + "'"));
      (interval ? backend.health_interval : backend.health_timeout) = d;
    } else if (item.rfind("rise=", 0) == 0 || item.rfind("fall=", 0) == 0) {
      if (!parse_uint(item.substr(5), 1, limits::kMaxRiseFall, &value)) {
        return Status::error(item.substr(0, 4) + " '" + item.substr(5) + "' must be 1 to 100");
      }
      (item[0] == 'r' ? backend.health_rise : backend.health_fall) = static_cast<uint32_t>(value);
    } else if (item.rfind("max-connections=", 0) == 0) {
      if (!parse_uint(item.substr(16), 0, limits::kMaxConnections, &value)) {
        return Status::error("max-connections '" + item.substr(16) + "' must be a whole number from 0 to 1000000");
      }
      backend.max_connections = static_cast<uint32_t>(value);
    } else {
      return Status::error("unknown backend setting '" + item +
                           "' (weight=N, max-connections=N, backup, send-proxy, send-proxy-v2, "
                           "health-interval=D, health-timeout=D, rise=N, fall=N)");
    }
  }
  *out = backend;
  return {};
}

void split_names(ClusterConfig* c) {
  std::vector<BackendConfig> addresses;
  for (BackendConfig& b : c->backends) {
    (b.dns.kind == DnsName::Kind::kNone ? addresses : c->names).push_back(std::move(b));
  }
  c->backends = std::move(addresses);
  if (!c->names.empty()) c->discovered = true;
}

Status parse_listen(const std::string& text, ListenConfig* out) {
  const size_t comma = text.find(',');
  ListenConfig listen = *out;
  if (std::string error; !parse_address(text.substr(0, comma), &listen.address, &error)) {
    return Status::error(error);
  }
  for (size_t at = comma; at != std::string::npos;) {
    const size_t next = text.find(',', at + 1);
    const std::string setting = text.substr(at + 1, next == std::string::npos ? next : next - at - 1);
    at = next;
    if (setting == "accept-proxy") {
      listen.accept_proxy = true;
    } else if (setting == "v6only") {
      listen.v6only = true;
    } else {
      return Status::error("unknown setting '" + setting + "' (accept-proxy, v6only)");
    }
  }
  // HAProxy's v6only: [::] takes IPv6 clients only. Without it an IPv6 listener is dual-stack;
  // on an IPv4 address the setting means nothing, which is likely a mistake.
  if (listen.v6only && listen.address.family() != AF_INET6) {
    return Status::error("v6only needs an IPv6 address ([::]:PORT)");
  }
  *out = listen;
  return {};
}

Status parse_hash_key(const std::string& text, balancer::HashKey* out) {
  if (text == "addr") {
    *out = balancer::HashKey::kAddr;
  } else if (text == "addr,port") {
    *out = balancer::HashKey::kAddrPort;
  } else {
    return Status::error("expected addr or addr,port");
  }
  return {};
}

Status parse_cpu_affinity(const std::string& text, std::vector<int>* cpus) {
  cpus->clear();
  if (text == "none") return {};
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) CPU_SET(0, &allowed);
  std::string allowed_list;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    allowed_list += (allowed_list.empty() ? "" : ",") + std::to_string(cpu);
    if (text == "auto") cpus->push_back(cpu);
  }
  if (text == "auto") return {};
  std::stringstream parts(text);
  std::string item;
  while (std::getline(parts, item, ',')) {
    uint64_t cpu = 0;
    if (!parse_uint(item, 0, CPU_SETSIZE - 1, &cpu) || !CPU_ISSET(static_cast<int>(cpu), &allowed)) {
      return Status::error("'" + item + "' is not a CPU this process may use (" + allowed_list + "; or none, auto)");
    }
    cpus->push_back(static_cast<int>(cpu));
  }
  if (cpus->empty()) return Status::error("expected none, auto or CPU[,CPU...]");
  return {};
}

Status check_name(const std::string& name) {
  bool ok = !name.empty() && name.size() <= limits::kMaxNameLength &&
            isalnum(static_cast<unsigned char>(name[0]));
  for (char ch : name) {
    ok = ok && (isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-');
  }
  if (!ok) {
    return Status::error("'" + name + "' is not a valid name: 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit");
  }
  return {};
}

Status parse_sni_pattern(const std::string& text, std::string* out) {
  std::string name;
  for (char ch : text) name += static_cast<char>(tolower(static_cast<unsigned char>(ch)));
  const bool wildcard = name.rfind("*.", 0) == 0;
  const std::string rest = wildcard ? name.substr(2) : name;
  bool ok = !rest.empty() && rest.size() <= 253;
  std::stringstream labels(rest);
  std::string label;
  size_t count = 0;
  while (ok && std::getline(labels, label, '.')) {
    ok = valid_label(label);
    ++count;
  }
  // getline drops a trailing empty label: "example.com." must fail too.
  ok = ok && rest.back() != '.';
  if (!ok || count == 0) {
    return Status::error("'" + text + "' is not a server name: use a DNS name (a.example.com) or one leading "
                         "wildcard label (*.example.com)");
  }
  *out = name;
  return {};
}

}  // namespace ringlb
