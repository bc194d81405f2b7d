// When a connection is due, and why, in each state: the rules the timer wheel serves.
#include "server/proxy/deadlines.h"

#include <gtest/gtest.h>

namespace ringlb::proxy {
namespace {

using metrics::CloseReason;

constexpr uint64_t kS = 1'000'000'000ULL;

Timeouts timeouts() {
  Timeouts t;
  t.idle_ns = 300 * kS;
  t.fin_ns = 30 * kS;
  t.queue_ns = 2 * kS;
  t.proxy_header_ns = 5 * kS;
  t.tls_inspect_ns = 3 * kS;
  return t;
}

Session proxying(uint64_t start, uint64_t active) {
  Session c;
  c.phase = Phase::kPump;
  c.start_ns = start;
  c.last_active_ns = active;
  return c;
}

TEST(Deadlines, IdleCountsFromTheLastActivity) {
  const Session c = proxying(0, 100 * kS);
  const Deadline d = next_deadline(c, timeouts());
  EXPECT_EQ(d.at_ns, 400 * kS);
  EXPECT_EQ(d.reason, CloseReason::k_idle_timeout);
  EXPECT_EQ(expired_deadline(c, timeouts(), 399 * kS).at_ns, UINT64_MAX);
  EXPECT_EQ(expired_deadline(c, timeouts(), 400 * kS).reason, CloseReason::k_idle_timeout);
}

TEST(Deadlines, AHalfClosedConnectionHasTheShorterFinTimeout) {
  Session c = proxying(0, 10 * kS);
  c.flow[kDown].eof = true;
  const Deadline d = next_deadline(c, timeouts());
  EXPECT_EQ(d.at_ns, 40 * kS);
  EXPECT_EQ(d.reason, CloseReason::k_fin_timeout);
  Timeouts longer_fin = timeouts();
  longer_fin.fin_ns = 600 * kS;  // a fin timeout longer than idle does not extend it
  EXPECT_EQ(next_deadline(c, longer_fin).reason, CloseReason::k_idle_timeout);
}

TEST(Deadlines, QueuedClientsHaveTheQueueTimeoutOnly) {
  Session c;
  c.phase = Phase::kConnect;
  c.queued = true;
  c.queued_ns = 5 * kS;
  c.last_active_ns = 0;
  const Deadline d = next_deadline(c, timeouts());
  EXPECT_EQ(d.at_ns, 7 * kS);
  EXPECT_EQ(d.reason, CloseReason::k_queue_timeout);
}

TEST(Deadlines, AProxyHeaderMustBeWholeWithinTheHeaderTimeoutFromTheStart) {
  Session c;
  c.phase = Phase::kProxyHeader;
  c.start_ns = c.phase_ns = 1 * kS;
  const Deadline d = next_deadline(c, timeouts());
  EXPECT_EQ(d.at_ns, 6 * kS);
  EXPECT_EQ(d.reason, CloseReason::k_bad_proxy_header);
  EXPECT_EQ(expired_deadline(c, timeouts(), 6 * kS).reason, CloseReason::k_bad_proxy_header);
}

TEST(Deadlines, AClientHelloMustBeWholeWithinTheInspectTimeout) {
  Session c;
  c.phase = Phase::kClientHello;
  c.start_ns = 1 * kS;
  c.phase_ns = 2 * kS;  // the peeking began after a PROXY header
  const Deadline d = next_deadline(c, timeouts());
  EXPECT_EQ(d.at_ns, 5 * kS);
  EXPECT_EQ(d.reason, CloseReason::k_bad_client_hello);
  EXPECT_EQ(expired_deadline(c, timeouts(), 4 * kS).at_ns, UINT64_MAX);
}

TEST(Deadlines, ConnectingHasNoneButMaxDurationAndDrain) {
  Session c;
  c.phase = Phase::kConnect;
  EXPECT_EQ(next_deadline(c, timeouts()).at_ns, UINT64_MAX);
  Timeouts t = timeouts();
  t.max_duration_ns = 60 * kS;
  EXPECT_EQ(next_deadline(c, t).at_ns, 60 * kS);
  EXPECT_EQ(next_deadline(c, t).reason, CloseReason::k_max_duration);
  c.deadline_ns = 20 * kS;
  EXPECT_EQ(next_deadline(c, t).at_ns, 20 * kS);
  EXPECT_EQ(next_deadline(c, t).reason, CloseReason::k_drain);
}

TEST(Deadlines, WhenSeveralHavePassedDrainWinsThenMaxDuration) {
  Session c = proxying(0, 0);
  Timeouts t = timeouts();
  t.max_duration_ns = 100 * kS;
  EXPECT_EQ(expired_deadline(c, t, 1000 * kS).reason, CloseReason::k_max_duration);
  c.deadline_ns = 500 * kS;
  EXPECT_EQ(expired_deadline(c, t, 1000 * kS).reason, CloseReason::k_drain);
}

TEST(Deadlines, ClosingAndFreeSessionsHaveNone) {
  Session c = proxying(0, 0);
  c.phase = Phase::kClosing;
  EXPECT_EQ(next_deadline(c, timeouts()).at_ns, UINT64_MAX);
  c.phase = Phase::kFree;
  EXPECT_EQ(expired_deadline(c, timeouts(), UINT64_MAX - 1).at_ns, UINT64_MAX);
}

TEST(Deadlines, AZeroTimeoutIsOff) {
  Session c = proxying(0, 0);
  Timeouts t = timeouts();
  t.idle_ns = 0;
  EXPECT_EQ(next_deadline(c, t).at_ns, UINT64_MAX) << "idle-timeout 0: no idle deadline";
  c.flow[kUp].eof = true;
  EXPECT_EQ(next_deadline(c, t).reason, CloseReason::k_fin_timeout) << "a fin timeout still applies";
  t.fin_ns = 0;
  EXPECT_EQ(next_deadline(c, t).at_ns, UINT64_MAX);
  t.idle_ns = 300 * kS;
  EXPECT_EQ(next_deadline(c, t).reason, CloseReason::k_idle_timeout) << "fin-timeout 0: idle applies half-closed";
  Session h;
  h.phase = Phase::kProxyHeader;
  t.proxy_header_ns = 0;
  EXPECT_EQ(next_deadline(h, t).at_ns, UINT64_MAX);
  h.phase = Phase::kClientHello;
  t.tls_inspect_ns = 0;
  EXPECT_EQ(next_deadline(h, t).at_ns, UINT64_MAX);
}

TEST(Deadlines, AdmitAndRouteHaveNoneOfTheirOwn) {
  Session c;
  for (Phase p : {Phase::kAdmit, Phase::kRoute}) {
    c.phase = p;
    EXPECT_EQ(next_deadline(c, timeouts()).at_ns, UINT64_MAX) << phase_name(p);
  }
}

// Wake-ups share the session's one timer: an interim access-log record and a held recv are due
// like a deadline, but closing nothing.
TEST(Deadlines, AnInterimRecordIsAWakeUpNotAClose) {
  Session c = proxying(0, 100 * kS);
  c.next_update_ns = 60 * kS;
  const Deadline d = next_deadline(c, timeouts());
  EXPECT_EQ(d.at_ns, 60 * kS);
  EXPECT_TRUE(d.wake);
  EXPECT_EQ(next_wake(c), 60 * kS);
  EXPECT_EQ(expired_deadline(c, timeouts(), 61 * kS).at_ns, UINT64_MAX) << "nothing to close";
  // In any phase but closing: a connection still connecting is still open.
  c.phase = Phase::kConnect;
  EXPECT_EQ(next_deadline(c, timeouts()).at_ns, 60 * kS);
  // A close deadline before it comes first, and is no wake-up.
  c = proxying(0, 0);
  c.next_update_ns = 600 * kS;
  EXPECT_EQ(next_deadline(c, timeouts()).at_ns, 300 * kS);
  EXPECT_FALSE(next_deadline(c, timeouts()).wake);
  EXPECT_EQ(next_deadline(c, timeouts()).reason, CloseReason::k_idle_timeout);
}

TEST(Deadlines, AHeldRecvWakesTheSessionWhileItPumps) {
  Session c = proxying(0, 100 * kS);
  c.rate[kDown].held_since_ns = 100 * kS;
  c.rate[kDown].held_until_ns = 100 * kS + 31'250'000;
  c.rate[kUp].held_since_ns = 100 * kS;
  c.rate[kUp].held_until_ns = 101 * kS;
  EXPECT_EQ(next_wake(c), 100 * kS + 31'250'000) << "the earlier of the two directions";
  EXPECT_EQ(next_deadline(c, timeouts()).at_ns, 100 * kS + 31'250'000);
  EXPECT_TRUE(next_deadline(c, timeouts()).wake);
  c.next_update_ns = 100 * kS + 1;
  EXPECT_EQ(next_wake(c), 100 * kS + 1);
  c.next_update_ns = 0;
  c.phase = Phase::kClosing;
  EXPECT_EQ(next_wake(c), UINT64_MAX) << "only the pump lets a recv go";
}

TEST(Deadlines, InterimRecordsStayOnTheSessionsGrid) {
  constexpr uint64_t start = 5 * kS, every = 60 * kS;
  EXPECT_EQ(next_update_at(start, every, start + every), start + 2 * every) << "written on time: the next one";
  EXPECT_EQ(next_update_at(start, every, start + every + 10'000'000), start + 2 * every) << "a late timer";
  EXPECT_EQ(next_update_at(start, every, start + 3 * every + 1), start + 4 * every) << "missed ones are skipped";
  EXPECT_EQ(next_update_at(start, every, 0), start + every);
}

}  // namespace
}  // namespace ringlb::proxy
