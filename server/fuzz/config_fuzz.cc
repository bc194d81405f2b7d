// libFuzzer entry point: the TOML config file (toml++, then every setting and cross-check) and
// the value parsers the flags share (durations, backends, listen addresses, CIDRs, CPU lists,
// SNI patterns). Anything may be refused; nothing may crash, hang, or accept a value outside
// its documented limits.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "server/base/acl.h"
#include "server/config/config.h"
#include "server/config/settings.h"
#include "server/config/toml_config.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "config_fuzz: invariant broken: %s\n", what);
    abort();
  }
}

void value_parsers(const std::string& text) {
  using namespace ringlb;
  std::string error;
  Millis d{0};
  if (parse_duration(text, &d).ok()) check(d.count() >= 0 && d.count() <= 576LL * 3600 * 1000, "duration limit");
  BackendConfig b;
  if (parse_backend(text, &b).ok()) check(b.weight <= 1000, "weight limit");
  ListenConfig l;
  (void)parse_listen(text, &l);
  Cidr c;
  parse_cidr(text, &c, &error);
  std::vector<int> cpus;
  (void)parse_cpu_affinity(text, &cpus);
  std::string pattern;
  if (parse_sni_pattern(text, &pattern).ok()) check(!pattern.empty() && pattern.size() <= 255, "SNI pattern length");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringlb;
  const std::string text(reinterpret_cast<const char*>(data), size);
  // Short inputs are values for the flag parsers, one per line.
  if (size < 128) {
    size_t start = 0;
    while (start <= text.size()) {
      size_t nl = text.find('\n', start);
      if (nl == std::string::npos) nl = text.size();
      value_parsers(text.substr(start, nl - start));
      start = nl + 1;
    }
  }
  TomlFile file;
  if (Status loaded = file.load_text(text, "fuzz.toml"); !loaded.ok()) {
    check(loaded.message().rfind("fuzz.toml:", 0) == 0, "a syntax error names the file");
    return 0;
  }
  Defaults d = make_defaults();
  Status errors = file.apply_top(&d);
  Config c = d.config;
  if (file.has_services()) errors.add(file.build(d, &c));
  for (const std::string& e : errors.lines()) check(e.rfind("fuzz.toml:", 0) == 0, "every error names the file");
  if (errors.ok() && file.has_services()) {
    check(c.workers >= 1 && c.workers <= 256, "workers limit");
    for (const ClusterConfig& cl : c.clusters) {
      check(!cl.backends.empty() || cl.discovered, "a cluster has backends, or gets them from discovery");
      check(cl.etcd_prefix.empty() || (cl.discovered && !c.etcd.endpoints.empty()),
            "an etcd prefix is watched only with discovery = etcd and endpoints to reach");
    }
    for (const ListenConfig& li : c.listen) check(!li.cluster.empty() || !li.sni_routes.empty(), "a listener routes somewhere");
  }
  return 0;
}
