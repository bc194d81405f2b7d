#pragma once

#include <cstdint>

namespace ringlb::health {

// When each backend's checks run. Every backend is checked at once when it appears (start-up,
// a reload or discovery adding it), so that a dead backend is found without waiting an
// interval. Left there, all of them would then stay in step and start in the same tick every
// interval: 1,000 backends would open 1,000 connections in one 50 ms burst each second. So the
// second check of each backend comes after its own share of the interval (its phase), and the
// checks after it follow each other one interval apart from there.

// The delay from a backend's first check to its second, in (0, interval_ns]. Spread over the
// interval by the backend's id along a golden-ratio (Weyl) sequence, so any run of consecutive
// ids, the usual shape of a cluster, is spread evenly; never longer than the interval, so a
// backend's state is not learned later than without the spread.
uint64_t phase_delay_ns(uint32_t id, uint64_t interval_ns);

// The next due time after a check that was due at `due_ns` started at `now_ns` (the tick runs
// up to one tick late): one interval after when it was due, keeping the backend's phase rather
// than drifting by the tick's lateness; but never in the past, so a check that ran very late
// (the checker was stalled, or the previous check overran its interval) is not followed by a
// burst of catch-up checks.
uint64_t next_due_ns(uint64_t due_ns, uint64_t now_ns, uint64_t interval_ns);

}  // namespace ringlb::health
