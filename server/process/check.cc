#include "server/process/check.h"

#include <cstdio>
#include <string>

#include "server/base/log.h"
#include "server/config/command_line.h"
#include "server/tls/check.h"
#include "server/runtime/summary.h"

namespace ringlb::process {

Status check(int argc, const char* const* argv) {
  Config config;
  std::string print;
  RINGLB_RETURN_IF_ERROR(parse_config(argc, argv, &config, &print));
  if (!print.empty()) {
    fputs(print.c_str(), stdout);
    return {};
  }
  // The TLS files, loaded as start-up will: a broken or expired certificate, or a key that is not
  // its certificate's, refuses; one expiring within 14 days is a warning.
  std::vector<std::string> warnings;
  RINGLB_RETURN_IF_ERROR(tls::check_files(config, &warnings));
  for (const std::string& w : warnings) log(LogLevel::kWarning, "%s", w.c_str());
  size_t backends = 0, names = 0;
  for (const ClusterConfig& c : config.clusters) {
    backends += c.backends.size();
    names += c.names.size();
  }
  // Names are checked for syntax only: check resolves nothing.
  printf("%s: ok (%s, %s, %s%s)\n", config.config_file.empty() ? "command line" : config.config_file.c_str(),
         plural(config.listen.size(), "listener").c_str(), plural(config.clusters.size(), "cluster").c_str(),
         plural(backends, "backend").c_str(), names > 0 ? (", " + plural(names, "DNS name")).c_str() : "");
  return {};
}

}  // namespace ringlb::process
