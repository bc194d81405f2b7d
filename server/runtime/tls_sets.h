// The TLS contexts a configuration needs, built before anything of it is published: a
// terminating listener's certificates, keys, client CAs and ticket keys, an originating cluster's
// CA and client certificate, each read from its files now. Start-up and every reload build them
// anew, so a reload re-reads every file; a file that is missing or broken refuses the whole
// config ("FILE: reason") and the running contexts stay.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/base/error.h"
#include "server/config/config.h"
#include "server/runtime/shared_state.h"
#include "server/tls/client_context.h"
#include "server/tls/server_context.h"

namespace ringlb {

struct TlsSets {
  // By config.listen index (null: the listener does not terminate).
  std::vector<std::shared_ptr<const tls::ServerContextSet>> listeners;
  // By cluster name, for each cluster with a [cluster.NAME.tls] table.
  std::vector<std::pair<std::string, std::shared_ptr<const tls::ClientContextSet>>> clusters;
  std::vector<std::string> warnings;  // certificates that expire within 14 days
};

// Builds `config`'s contexts, one per worker. A listener kept by a reload (the same index in
// `indexes`, or its position) keeps the running set's ticket keys, so the tickets it gave out
// still resume (unless it names a ticket-keys file, which is read again).
Status build_tls(const Config& config, const SharedState& shared, const std::vector<uint16_t>* indexes,
                 TlsSets* out);

}  // namespace ringlb
