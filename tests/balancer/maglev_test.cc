#include "balancer/maglev.h"

#include <gtest/gtest.h>

#include <map>

namespace ringlb::balancer {
namespace {

std::vector<MaglevBackend> named(int n, uint32_t weight = 1) {
  std::vector<MaglevBackend> out;
  for (int i = 0; i < n; ++i) out.push_back({"10.0.0." + std::to_string(i + 1) + ":80", weight});
  return out;
}

std::vector<int> counts(const std::vector<int32_t>& table, size_t n) {
  std::vector<int> c(n, 0);
  for (int32_t e : table) c.at(static_cast<size_t>(e))++;
  return c;
}

TEST(Maglev, PrimeSizesOnly) {
  EXPECT_TRUE(is_prime(65537));
  EXPECT_TRUE(is_prime(13));
  EXPECT_FALSE(is_prime(65536));
  EXPECT_FALSE(is_prime(1));
  EXPECT_TRUE(build_maglev(named(3), 65536).empty());
  EXPECT_TRUE(build_maglev(named(3), 100).empty());
}

TEST(Maglev, GoldenSmallTable) {
  // Frozen output: a change here changes which backend every client goes to after an upgrade.
  const std::vector<MaglevBackend> b = {{"a", 1}, {"b", 1}, {"c", 1}};
  const std::vector<int32_t> golden = {2, 1, 0, 1, 2, 2, 0, 0, 0, 1, 1, 2, 0};
  EXPECT_EQ(build_maglev(b, 13), golden);
}

TEST(Maglev, EveryEntryFilledAndEqualWeightsEven) {
  for (int n : {2, 3, 7, 10, 100}) {
    const auto table = build_maglev(named(n), 65537);
    ASSERT_EQ(table.size(), 65537u);
    const auto c = counts(table, static_cast<size_t>(n));
    const auto [lo, hi] = std::minmax_element(c.begin(), c.end());
    EXPECT_LE(*hi - *lo, 1) << n << " backends";
  }
}

TEST(Maglev, WeightsGiveProportionalCounts) {
  std::vector<MaglevBackend> b = named(3);
  b[0].weight = 1;
  b[1].weight = 2;
  b[2].weight = 5;
  const auto c = counts(build_maglev(b, 65537), 3);
  const double unit = 65537.0 / 8;
  EXPECT_NEAR(c[0], unit * 1, 8);
  EXPECT_NEAR(c[1], unit * 2, 8);
  EXPECT_NEAR(c[2], unit * 5, 8);
}

TEST(Maglev, RemovingOneOfNMovesAboutOneNth) {
  for (int n : {5, 10, 50}) {
    const auto all = named(n);
    auto fewer = all;
    fewer.erase(fewer.begin() + n / 2);
    const auto before = build_maglev(all, 65537);
    const auto after = build_maglev(fewer, 65537);
    int moved = 0;
    for (size_t e = 0; e < before.size(); ++e) {
      // Compare by name: indexes shift after the removed one.
      if (all[static_cast<size_t>(before[e])].name != fewer[static_cast<size_t>(after[e])].name) ++moved;
    }
    const double share = 65537.0 / n;  // the removed backend's entries must move
    EXPECT_GE(moved, share * 0.99) << n;
    EXPECT_LE(moved, share * 1.25) << n << " backends: " << moved << " of 65537 entries moved";
  }
}

}  // namespace
}  // namespace ringlb::balancer
