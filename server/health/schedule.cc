#include "server/health/schedule.h"

namespace ringlb::health {

uint64_t phase_delay_ns(uint32_t id, uint64_t interval_ns) {
  if (interval_ns == 0) return 0;
  // (id + 1) * 2^32 / phi, mod 2^32: the fractional part of (id + 1) / phi, in 32 bits.
  const uint32_t fraction = static_cast<uint32_t>((uint64_t{id} + 1) * 0x9E3779B9ULL);
  // interval * fraction / 2^32 without overflow for intervals up to the 2^32 ms limit.
  const uint64_t delay = static_cast<uint64_t>((static_cast<unsigned __int128>(interval_ns) * fraction) >> 32);
  return delay == 0 ? 1 : delay;
}

uint64_t next_due_ns(uint64_t due_ns, uint64_t now_ns, uint64_t interval_ns) {
  const uint64_t kept = due_ns + interval_ns;
  return kept > now_ns ? kept : now_ns + interval_ns;
}

}  // namespace ringlb::health
