// The TLS tables of the config file: [listener.tls] (termination) and [cluster.NAME.tls]
// (origination), read into TlsListenerConfig and TlsClusterConfig (config.h). Syntax and the
// checks that need only the table; the files they name are read by server/tls (ringlb check
// and every start and reload load them). Internal to server/config (it exposes toml++ types).
#pragma once

#include <optional>
#include <string>
#include <toml++/toml.h>
#include <vector>

#include "server/config/config.h"
#include "server/config/toml_reader.h"

namespace ringlb::toml_reader {

// The keys of each table (tests/docs/man_test.sh reads these lists: each is in ringlb.toml(5)).
extern const std::vector<std::string> kListenerTlsKeys;
extern const std::vector<std::string> kClusterTlsKeys;

// `node` is the value of a listener's `tls` key, `path` its name in errors ("listener[0].tls").
// *out is set when the table reads without an error.
void read_listener_tls(const toml::node& node, const std::string& path, Errors* errors,
                       std::optional<TlsListenerConfig>* out);

// The same for a cluster's `tls` key ("cluster.web.tls").
void read_cluster_tls(const toml::node& node, const std::string& path, Errors* errors,
                      std::optional<TlsClusterConfig>* out);

}  // namespace ringlb::toml_reader
