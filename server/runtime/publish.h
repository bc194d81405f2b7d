// What start-up and a reload publish into SharedState: the listeners' routes, every cluster's
// snapshot and the listeners' policies. Each is all or nothing: an error publishes nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/base/error.h"
#include "server/config/config.h"
#include "server/runtime/shared_state.h"
#include "server/runtime/tls_sets.h"

namespace ringlb {

// Start-up: registers the clusters and sets each listener's route (indexes 0..n-1). An error
// says why the config cannot be used.
Status set_up_routes(const Config& config, SharedState* shared);

// The route of `listen` (registering the clusters it names), for a listener a reload adds.
Status make_route(const ListenConfig& listen, SharedState* shared, ListenerRoute* route);

// Whether a running listener `was` can serve as `now` in place, its route kept: same address,
// accept-proxy, cluster and SNI routes (the settings in ListenerPolicy may differ). Otherwise a
// reload removes it and adds `now` under a new index with a route of its own.
bool same_listener(const ListenConfig& was, const ListenConfig& now);

// Builds every cluster's snapshot for `config` (registering new clusters, backends and their
// addresses), publishes with `version` those that changed and retires clusters it no longer
// has. All or nothing: an error says why the config cannot be used (nothing published).
// *changed (if given) gets the names of the clusters published. Callers serialise
// (discovery::ClusterPublisher does), and `version` only grows.
Status publish_clusters(const Config& config, uint64_t version, SharedState* shared,
                        std::vector<std::string>* changed = nullptr);

// Publishes the listeners' policies of `config`. `indexes` (if given) is the listener index of
// each config.listen entry (otherwise its position); every index in shared->listener_live gets a
// policy, those not live marked removed. The acceptor's thread only (it reads listener_live).
// `tls` (if given) are the TLS contexts build_tls made for `config`; without it no listener
// terminates and no cluster originates TLS.
void publish_policies(const Config& config, uint64_t version, SharedState* shared,
                      const std::vector<uint16_t>* indexes = nullptr, const TlsSets* tls = nullptr);

// build_tls, publish_clusters, then (if both worked) publish_policies.
Status publish_config(const Config& config, uint64_t version, SharedState* shared,
                      std::vector<std::string>* changed = nullptr, const std::vector<uint16_t>* indexes = nullptr);

}  // namespace ringlb
