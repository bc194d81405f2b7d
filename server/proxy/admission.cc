#include "server/proxy/admission.h"

namespace ringlb::proxy {

using metrics::CloseReason;

CloseReason refusal_reason(sources::Admission a) {
  switch (a) {
    case sources::Admission::kTooMany: return CloseReason::k_source_connections;
    case sources::Admission::kTooFast: return CloseReason::k_source_rate;
    case sources::Admission::kTableFull: return CloseReason::k_source_table_full;
    case sources::Admission::kAdmitted: break;
  }
  return CloseReason::k_error;
}

Admitted admit_address(const ListenerPolicy& policy, const sockaddr* addr, uint64_t now_ns,
                       sources::SharedSourceTable** table, sources::SourceKey* key) {
  *table = nullptr;
  if (!policy.acl.allows(addr)) return {false, CloseReason::k_denied};
  // Denied clients take no token.
  if (policy.sources == nullptr) return {true};
  const sources::SourceKey k = sources::source_key(addr, policy.source_ipv6_prefix);
  const sources::Admission a = policy.sources->acquire(k, now_ns);
  if (a != sources::Admission::kAdmitted) return {false, refusal_reason(a)};
  *table = policy.sources;
  *key = k;
  return {true};
}

}  // namespace ringlb::proxy
