// The token bucket of a bandwidth limit (rate_limit.h), without a ring: it refills at its rate up
// to one buffer, keeps the fraction of a token between refills, says when a quantum is there,
// and pays a debt back first.
#include "server/proxy/rate_limit.h"

#include <gtest/gtest.h>

namespace ringlb::proxy {
namespace {

constexpr uint64_t kMs = 1'000'000ULL;
constexpr uint64_t kSec = 1'000'000'000ULL;
constexpr uint64_t kT0 = 1000 * kSec;  // an arbitrary start on the monotonic clock

TEST(TokenBucket, StartsFullAndRefillsAtItsRateUpToTheBurst) {
  TokenBucket b;
  b.start(1000, 4096, kT0);  // 1000 bytes per second, a 4 KiB buffer
  EXPECT_TRUE(b.limited());
  EXPECT_EQ(b.available(kT0), 4096u);
  b.take(4096);
  EXPECT_EQ(b.available(kT0), 0u);
  EXPECT_EQ(b.available(kT0 + 500 * kMs), 500u);
  EXPECT_EQ(b.available(kT0 + 1 * kSec), 1000u);
  EXPECT_EQ(b.available(kT0 + 60 * kSec), 4096u) << "never more than the burst";
  // Full for a while: time spent full earns nothing.
  b.take(4096);
  EXPECT_EQ(b.available(kT0 + 61 * kSec), 1000u);
}

TEST(TokenBucket, AnUnlimitedBucketSaysSo) {
  TokenBucket b;
  b.start(0, 4096, kT0);
  EXPECT_FALSE(b.limited());
}

// Many small refills add up to the rate: the fraction of a token is carried, not dropped.
TEST(TokenBucket, FractionsOfATokenAreKeptAcrossRefills) {
  TokenBucket b;
  b.start(3, 100, kT0);  // 3 bytes per second: a token every 333.33 ms
  b.take(100);
  uint64_t got = 0;
  for (uint64_t t = kT0; t <= kT0 + 10 * kSec; t += 8 * kMs) {
    const uint64_t n = b.available(t);
    got += n;
    b.take(n);
  }
  EXPECT_EQ(got, 30u) << "10 s at 3 bytes per second, refilled every 8 ms";
}

TEST(TokenBucket, ReadyAtIsWhenTheTokensAreThereNeverBefore) {
  TokenBucket b;
  b.start(4 << 20, 128 << 10, kT0);  // 4 MiB/s, a 128 KiB buffer
  EXPECT_EQ(b.ready_at(1, kT0), kT0) << "there already";
  b.take(128 << 10);
  // 128 KiB at 4 MiB/s: 31.25 ms.
  const uint64_t at = b.ready_at(128 << 10, kT0);
  EXPECT_EQ(at, kT0 + 31'250'000);
  EXPECT_LT(b.available(at - 1), uint64_t{128 << 10});
  EXPECT_EQ(b.available(at), uint64_t{128 << 10});
  // Rounded up: 1 byte at 3 bytes per second is 333,333,334 ns away, not 333,333,333.
  TokenBucket slow;
  slow.start(3, 10, kT0);
  slow.take(10);
  const uint64_t one = slow.ready_at(1, kT0);
  EXPECT_EQ(one, kT0 + 333'333'334);
  EXPECT_EQ(slow.available(one - 1), 0u);
  EXPECT_EQ(slow.available(one), 1u);
}

TEST(TokenBucket, ADebtIsPaidBackFirst) {
  TokenBucket b;
  b.start(1000, 1000, kT0);
  b.take(1500);  // more than it held: 500 owed
  EXPECT_EQ(b.available(kT0), 0u);
  EXPECT_EQ(b.available(kT0 + 400 * kMs), 0u);
  EXPECT_EQ(b.ready_at(100, kT0 + 400 * kMs), kT0 + 600 * kMs);
  EXPECT_EQ(b.available(kT0 + 600 * kMs), 100u);
}

// The quantum a held recv waits for: about 1/20 s of the rate, within [1 byte, the burst].
TEST(TokenBucket, TheQuantumIsAbout50msOfTheRateWithinTheBurst) {
  TokenBucket b;
  b.start(4 << 20, 128 << 10, kT0);
  EXPECT_EQ(b.quantum(), uint64_t{128 << 10}) << "4 MiB/s: a whole buffer (31 ms)";
  b.start(1'000'000, 128 << 10, kT0);
  EXPECT_EQ(b.quantum(), 50'000u);
  b.start(10, 128 << 10, kT0);
  EXPECT_EQ(b.quantum(), 1u);
}

// Hours of nanoseconds times a high rate: no overflow, and the bucket is simply full.
TEST(TokenBucket, ALongIdleSpellAtAHighRateDoesNotOverflow) {
  TokenBucket b;
  b.start(1ULL << 40, 1 << 20, kT0);
  b.take(1 << 20);
  EXPECT_EQ(b.available(kT0 + 24 * 3600 * kSec), uint64_t{1 << 20});
}

TEST(RateLimit, TheLowerOfTheListenersAndTheClustersApplies) {
  EXPECT_EQ(combined_rate(0, 0), 0u);
  EXPECT_EQ(combined_rate(1000, 0), 1000u);
  EXPECT_EQ(combined_rate(0, 2000), 2000u);
  EXPECT_EQ(combined_rate(1000, 2000), 1000u);
  EXPECT_EQ(combined_rate(3000, 2000), 2000u);
}

}  // namespace
}  // namespace ringlb::proxy
