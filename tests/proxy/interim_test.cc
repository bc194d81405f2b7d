// access-log-interval through the fake seam: every session still open gets a record (event=update,
// bytes and duration so far) at each interval of its life, on its one timer, and the record at
// close says event=close. Sessions without it keep the timer they had.
#include <gtest/gtest.h>

#include "server/access_log/access_log.h"
#include "tests/proxy/harness.h"

namespace ringlb::proxy::testing {
namespace {

using metrics::CloseReason;

// The access log must be open for records to be made; the fake seam keeps the lines.
class WithAccessLog {
 public:
  explicit WithAccessLog(Harness& h) : h_(h) {
    auto opened = AccessLog::open("/dev/null", nullptr);
    EXPECT_TRUE(opened.ok()) << opened.status().message();
    log_ = std::move(opened.value());
    h_.shared->access_log = log_.get();
  }
  ~WithAccessLog() { h_.shared->access_log = nullptr; }

 private:
  Harness& h_;
  std::unique_ptr<AccessLog> log_;
};

Config every_second() {
  Config c = default_config();
  c.access_log_interval = Millis(1000);
  return c;
}

bool has(const std::string& line, const std::string& part) { return line.find(part) != std::string::npos; }

TEST(Interim, ARecordAtEachIntervalWithTheBytesAndDurationSoFar) {
  Harness h(every_second());
  WithAccessLog log(h);
  const uint32_t id = h.pumping(100, 200);
  EXPECT_EQ(h.ops->timers.at(id), h.session(id).start_ns + kSec) << "its timer is at the first record";
  h.receive(h.last_on(Request::kRecv, 100), "hello");
  h.complete(h.last(Request::kSendBuffer), 5);
  h.advance(kSec);
  ASSERT_EQ(h.ops->access_lines.size(), 1u);
  const std::string& first = h.ops->access_lines[0];
  EXPECT_TRUE(has(first, " backend=127.0.0.1:9001 ")) << first;
  EXPECT_TRUE(has(first, " duration_us=1000000 bytes_from_client=5 bytes_from_backend=0 close=- event=update\n")) << first;
  EXPECT_EQ(h.session(id).phase, Phase::kPump) << "still open";

  h.receive(h.last_on(Request::kRecv, 200), "0123456789");
  h.complete(h.last(Request::kSendBuffer), 10);
  h.advance(kSec);
  ASSERT_EQ(h.ops->access_lines.size(), 2u);
  EXPECT_TRUE(has(h.ops->access_lines[1], " duration_us=2000000 bytes_from_client=5 bytes_from_backend=10 close=- event=update\n"))
      << h.ops->access_lines[1];
  h.advance(kSec);
  ASSERT_EQ(h.ops->access_lines.size(), 3u);
  EXPECT_TRUE(has(h.ops->access_lines[2], " duration_us=3000000 ")) << h.ops->access_lines[2];

  // Between two intervals: nothing.
  h.advance(500 * kMs);
  EXPECT_EQ(h.ops->access_lines.size(), 3u);
  // Then the connection ends: its record says so.
  h.receive(h.last_on(Request::kRecv, 100), "");
  h.receive(h.last_on(Request::kRecv, 200), "");
  h.end_batch();
  for (const Request& r : h.since(0)) {
    if (r.kind == Request::kShutdown) h.complete(r, 0);
  }
  ASSERT_EQ(h.session(id).phase, Phase::kFree);
  ASSERT_EQ(h.ops->access_lines.size(), 4u);
  EXPECT_TRUE(has(h.ops->access_lines[3], " duration_us=3500000 bytes_from_client=5 bytes_from_backend=10 close=client_eof event=close\n"))
      << h.ops->access_lines[3];
  h.advance(10 * kSec);
  EXPECT_EQ(h.ops->access_lines.size(), 4u) << "none once closed";
}

// A connection still connecting (or waiting in the queue) is open too.
TEST(Interim, ASessionNotYetConnectedHasRecordsToo) {
  Harness h(every_second());
  WithAccessLog log(h);
  h.arrive(100);
  h.give_socket(h.last(Request::kSocket), 200);  // the connect is out, not answered
  h.advance(kSec);
  ASSERT_EQ(h.ops->access_lines.size(), 1u);
  EXPECT_TRUE(has(h.ops->access_lines[0], " connect_attempts=1 connect_us=- duration_us=1000000 ")) << h.ops->access_lines[0];
  EXPECT_TRUE(has(h.ops->access_lines[0], " event=update\n")) << h.ops->access_lines[0];
}

// The records come on the session's own timer, which still serves its deadlines: the idle
// timeout closes it on time between records.
TEST(Interim, TheIdleTimeoutStillClosesOnTime) {
  Config c = every_second();
  c.idle_timeout = Millis(2500);
  Harness h(c);
  WithAccessLog log(h);
  const uint32_t id = h.pumping(100, 200);
  h.advance(kSec);
  h.advance(kSec);
  EXPECT_EQ(h.ops->access_lines.size(), 2u);
  h.advance(500 * kMs);
  EXPECT_EQ(h.session(id).closed_as, CloseReason::k_idle_timeout);
  ASSERT_EQ(h.ops->access_lines.size(), 3u);
  EXPECT_TRUE(has(h.ops->access_lines[2], " close=idle_timeout event=close\n")) << h.ops->access_lines[2];
}

// Off (the default), or with no access log: no records and no wake-ups; the timer is where the
// idle timeout puts it.
TEST(Interim, OffMeansNoRecordsAndNoWakeUps) {
  Harness h;  // access-log-interval 0
  WithAccessLog log(h);
  const uint32_t id = h.pumping(100, 200);
  EXPECT_EQ(h.session(id).next_update_ns, 0u);
  EXPECT_EQ(h.ops->timers.at(id), h.session(id).last_active_ns + to_ns(h.config.idle_timeout));
  h.advance(60 * kSec);
  EXPECT_TRUE(h.ops->access_lines.empty());

  Harness without_log(every_second());  // an interval, but no access log to write to
  const uint32_t other = without_log.pumping(100, 200);
  EXPECT_EQ(without_log.session(other).next_update_ns, 0u);
  EXPECT_EQ(without_log.ops->timers.at(other), without_log.session(other).last_active_ns + to_ns(without_log.config.idle_timeout));
}

// A timer that fires late (a busy loop) writes one record, and the next is back on the grid.
TEST(Interim, ALateTimerWritesOneRecordAndStaysOnTheGrid) {
  Harness h(every_second());
  WithAccessLog log(h);
  const uint32_t id = h.pumping(100, 200);
  const uint64_t start = h.session(id).start_ns;
  h.env->now_ns += 3 * kSec + 300 * kMs;  // three intervals passed before the timer could fire
  h.driver->on_timer(id);
  EXPECT_EQ(h.ops->access_lines.size(), 1u);
  EXPECT_EQ(h.session(id).next_update_ns, start + 4 * kSec);
  EXPECT_EQ(h.ops->timers.at(id), start + 4 * kSec);
}

}  // namespace
}  // namespace ringlb::proxy::testing
