// Every TLS file a configuration names, loaded and checked as start-up and each reload will:
// what `ringlb check` runs. The listeners' certificates, keys, client CAs and ticket-key files;
// the clusters' CA files (or the system's) and client certificates.
#pragma once

#include <string>
#include <vector>

#include "server/base/error.h"
#include "server/config/config.h"

namespace ringlb::tls {

// One "FILE: reason" line per problem (exit code 2): a missing or broken file, a key that does
// not match its certificate, an expired certificate. *warnings gets each certificate that
// expires within 14 days. `now`: Unix seconds (0: the clock's).
Status check_files(const Config& config, std::vector<std::string>* warnings, int64_t now = 0);

}  // namespace ringlb::tls
