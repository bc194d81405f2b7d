// Ring's submission guarantees against the real kernel: link chains arrive whole, SQEs survive
// failed submissions in order, and CQ overflow is visible without losing completions.
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "server/uring/compat.h"
#include "server/uring/ring.h"

namespace ringlb::uring {
namespace {

struct Completion {
  uint64_t user_data;
  int res;
};

RingOptions small_ring(unsigned entries) {
  RingOptions o;
  o.entries = entries;
  return o;
}

void prep_nop(Ring& ring, uint64_t user_data, uint8_t flags = 0) {
  io_uring_sqe* sqe = ring.sqe();
  io_uring_prep_nop(sqe);
  sqe->flags |= flags;
  sqe->user_data = user_data;
}

// Fails with -EBADF when it runs: a chain head whose failure cancels what is linked to it.
void prep_failing_head(Ring& ring, uint64_t user_data) {
  static char buf[8];
  io_uring_sqe* sqe = ring.sqe();
  io_uring_prep_read(sqe, -1, buf, sizeof(buf), 0);
  sqe->flags |= IOSQE_IO_LINK;
  sqe->user_data = user_data;
}

// Submits and reaps until `n` completions have arrived (each wait returns at least one).
std::vector<Completion> collect(Ring& ring, size_t n) {
  std::vector<Completion> out;
  for (size_t waits = 0; waits <= n; ++waits) {
    ring.reap([&](const io_uring_cqe* cqe) { out.push_back({cqe->user_data, cqe->res}); });
    if (out.size() >= n) break;
    EXPECT_EQ(ring.submit_and_wait_one(), 0);
  }
  return out;
}

TEST(Ring, ReservedChainArrivesWholeWhenTheSqLacksOneSlot) {
  Ring ring;
  ASSERT_EQ(ring.init(small_ring(4)), 0);
  ASSERT_EQ(ring.sq_entries(), 4u);
  prep_nop(ring, 1);
  prep_nop(ring, 2);
  ASSERT_EQ(io_uring_sq_space_left(ring.get()), 2u);  // one slot fewer than the chain needs

  ring.reserve(3);
  prep_failing_head(ring, 10);
  prep_nop(ring, 11, IOSQE_IO_LINK);
  prep_nop(ring, 12);

  std::vector<Completion> got = collect(ring, 5);
  ASSERT_EQ(got.size(), 5u);
  for (const Completion& c : got) {
    switch (c.user_data) {
      case 1:
      case 2:
        EXPECT_EQ(c.res, 0);
        break;
      case 10:
        EXPECT_EQ(c.res, -EBADF);
        break;
      case 11:
      case 12:
        // -ECANCELED proves the NOP was still linked to the failed head: split off into a
        // submission of its own it would have run and returned 0.
        EXPECT_EQ(c.res, -ECANCELED) << "SQE " << c.user_data << " ran unlinked";
        break;
      default:
        ADD_FAILURE() << "unexpected user_data " << c.user_data;
    }
  }
  EXPECT_EQ(ring.submit_errors(), 0u);
}

TEST(Ring, SpilledSqesSurviveFailedSubmitsInOrder) {
  // A disabled ring refuses every submission (-EBADFD) until enabled: a real failing submit.
  RingOptions options = small_ring(4);
  options.disabled = true;
  Ring ring;
  ASSERT_EQ(ring.init(options), 0);
  ASSERT_EQ(ring.sq_entries(), 4u);

  uint64_t next = 1;
  for (; next <= 6; ++next) prep_nop(ring, next);  // the 5th finds the SQ full: spilled
  EXPECT_GE(ring.submit_errors(), 1u);
  EXPECT_EQ(ring.spilled(), 2u);
  // A chain reserved while the spill is non-empty goes to the spill whole, behind it. Draining
  // moves 5 and 6 into a 4-slot SQ, leaving 2 slots for this 3-SQE chain: it must wait for the
  // next batch rather than straddle two.
  ring.reserve(3);
  const uint64_t head = next++;
  prep_failing_head(ring, head);
  prep_nop(ring, next++, IOSQE_IO_LINK);
  prep_nop(ring, next++);
  for (int i = 0; i < 4; ++i) prep_nop(ring, next++);
  const size_t total = next - 1;  // 13: more than three times the SQ
  EXPECT_EQ(ring.spilled(), total - 4);
  EXPECT_EQ(ring.submit(), -EBADFD);  // still disabled: nothing moves, nothing is lost
  EXPECT_EQ(ring.spilled(), total - 4);

  ASSERT_EQ(ring.enable(), 0);
  EXPECT_GT(ring.submit(), 0);
  std::vector<Completion> got = collect(ring, total);
  ASSERT_EQ(got.size(), total);
  EXPECT_EQ(ring.spilled(), 0u);
  // Every SQE completed once; the plain NOPs (which complete inline as submitted) in the order
  // sqe() handed them out; the spilled chain still linked.
  std::vector<int> seen(total + 1, 0);
  uint64_t last_plain = 0;
  for (const Completion& c : got) {
    ASSERT_GE(c.user_data, 1u);
    ASSERT_LE(c.user_data, total);
    ++seen[c.user_data];
    if (c.user_data == head) {
      EXPECT_EQ(c.res, -EBADF);
    } else if (c.user_data == head + 1 || c.user_data == head + 2) {
      EXPECT_EQ(c.res, -ECANCELED) << "spilled chain was split";
    } else {
      EXPECT_EQ(c.res, 0);
      EXPECT_GT(c.user_data, last_plain) << "SQEs reordered";
      last_plain = c.user_data;
    }
  }
  for (size_t ud = 1; ud <= total; ++ud) EXPECT_EQ(seen[ud], 1) << "user_data " << ud;
}

TEST(Ring, CqOverflowIsVisibleAndLosesNothing) {
  RingOptions options = small_ring(4);
  options.cq_entries = 4;  // the kernel's minimum here is the SQ size
  Ring ring;
  ASSERT_EQ(ring.init(options), 0);
  ASSERT_EQ(ring.cq_entries(), 4u);
  EXPECT_FALSE(ring.cq_overflow_pending());

  constexpr uint64_t kNops = 10;
  for (uint64_t ud = 1; ud <= kNops; ++ud) prep_nop(ring, ud);
  ASSERT_GE(ring.submit(), 1);
  EXPECT_TRUE(ring.cq_overflow_pending()) << "10 completions fit a 4-entry CQ?";

  std::vector<Completion> got = collect(ring, kNops);
  ASSERT_EQ(got.size(), kNops);
  for (uint64_t i = 0; i < kNops; ++i) {
    EXPECT_EQ(got[i].user_data, i + 1);
    EXPECT_EQ(got[i].res, 0);
  }
  // They waited on the kernel's overflow list: none was dropped.
  EXPECT_EQ(ring.cq_dropped(), 0u);
  EXPECT_FALSE(ring.cq_overflow_pending());
  EXPECT_EQ(ring.submit_errors(), 0u);
}

TEST(Ring, SubmitAndWaitOneReturnsRealErrors) {
  RingOptions options = small_ring(4);
  options.disabled = true;
  Ring disabled;
  ASSERT_EQ(disabled.init(options), 0);
  prep_nop(disabled, 1);
  EXPECT_EQ(disabled.submit_and_wait_one(), -EBADFD);
  EXPECT_EQ(disabled.submit_errors(), 1u);

  // A SINGLE_ISSUER ring used from a thread that does not own it.
  Ring owned;
  ASSERT_EQ(owned.init(small_ring(4)), 0);
  prep_nop(owned, 1);
  int ret = 0;
  std::thread([&] { ret = owned.submit_and_wait_one(); }).join();
  EXPECT_EQ(ret, -EEXIST);
  // The owner still gets its NOP: the failed submission lost nothing.
  std::vector<Completion> got = collect(owned, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].user_data, 1u);
}

// The worker's timers due before its tick bound the wait: with nothing in flight the wait ends
// after the timeout (0: nothing went wrong), not never; what was queued is submitted all the same.
TEST(Ring, ATimedWaitEndsAtItsTimeoutAndStillSubmits) {
  Ring ring;
  ASSERT_EQ(ring.init(small_ring(4)), 0);
  ASSERT_NE(ring.get()->features & IORING_FEAT_EXT_ARG, 0u) << "a kernel before 5.11";
  const uint64_t timeout = 30'000'000;  // 30 ms
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(ring.submit_and_wait_one(&timeout), 0);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, std::chrono::milliseconds(30));
  EXPECT_LT(waited, std::chrono::seconds(2));
  EXPECT_EQ(io_uring_cq_ready(ring.get()), 0u);
  // A zero timeout does not block; a queued NOP goes in with the wait and completes.
  const uint64_t zero = 0;
  EXPECT_EQ(ring.submit_and_wait_one(&zero), 0);
  prep_nop(ring, 7);
  EXPECT_EQ(ring.submit_and_wait_one(&timeout), 0);
  std::vector<Completion> got;
  ring.reap([&](const io_uring_cqe* cqe) { got.push_back({cqe->user_data, cqe->res}); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].user_data, 7u);
  EXPECT_EQ(ring.submit_errors(), 0u);
}

}  // namespace
}  // namespace ringlb::uring
