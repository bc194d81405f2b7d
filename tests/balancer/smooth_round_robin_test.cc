#include "balancer/smooth_round_robin.h"

#include <gtest/gtest.h>

#include <string>

namespace ringlb::balancer {
namespace {

std::string sequence(SmoothRoundRobin& rr, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>('a' + rr.pick());
  return s;
}

TEST(SmoothRoundRobin, FiveOneOneInterleaves) {
  const uint32_t w[] = {5, 1, 1};
  SmoothRoundRobin rr(w);
  // The known nginx sequence: a's spread out, never five in a row.
  EXPECT_EQ(sequence(rr, 14), "aabacaaaabacaa");
}

TEST(SmoothRoundRobin, EqualWeightsRotate) {
  const uint32_t w[] = {1, 1, 1};
  SmoothRoundRobin rr(w);
  EXPECT_EQ(sequence(rr, 6), "abcabc");
}

TEST(SmoothRoundRobin, SkipsIneligibleAndReportsNone) {
  const uint32_t w[] = {1, 1, 1};
  SmoothRoundRobin rr(w);
  std::string s;
  for (int i = 0; i < 4; ++i) s += static_cast<char>('a' + rr.pick([](int b) { return b != 1; }));
  EXPECT_EQ(s, "acac");
  EXPECT_EQ(rr.pick([](int) { return false; }), -1);
}

}  // namespace
}  // namespace ringlb::balancer
