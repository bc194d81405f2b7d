// SNI routes: exact names beat wildcards, the longest wildcard suffix wins, "*.example.com" covers
// every depth under example.com but not example.com, and bad patterns say why.
#include "server/protocol/sni_routes.h"

#include <gtest/gtest.h>

#include <string>

namespace ringlb::protocol {
namespace {

constexpr size_t kDefault = 99;

SniRoutes routes() {
  SniRoutes r(kDefault);
  EXPECT_EQ(r.add("www.example.com", 1), "");
  EXPECT_EQ(r.add("*.example.com", 2), "");
  EXPECT_EQ(r.add("*.eu.example.com", 3), "");
  EXPECT_EQ(r.add("example.com", 4), "");
  EXPECT_EQ(r.add("*.com", 5), "");
  EXPECT_EQ(r.add("api.eu.example.com", 6), "");
  return r;
}

TEST(SniRoutes, ExactBeatsWildcard) {
  const SniRoutes r = routes();
  EXPECT_EQ(r.size(), 6u);
  EXPECT_EQ(r.match("www.example.com"), 1u);
  EXPECT_EQ(r.match("example.com"), 4u);
  EXPECT_EQ(r.match("api.eu.example.com"), 6u);
}

TEST(SniRoutes, WildcardCoversAnyDepthButNotItsApex) {
  const SniRoutes r = routes();
  EXPECT_EQ(r.match("foo.example.com"), 2u);
  EXPECT_EQ(r.match("a.b.c.example.com"), 2u);
  SniRoutes only(kDefault);
  ASSERT_EQ(only.add("*.example.org", 7), "");
  EXPECT_EQ(only.match("example.org"), kDefault);
  EXPECT_EQ(only.match("x.example.org"), 7u);
  EXPECT_EQ(only.match("xexample.org"), kDefault) << "a suffix only counts at a label boundary";
  EXPECT_EQ(only.match("x.example.org.evil"), kDefault);
}

TEST(SniRoutes, LongestWildcardSuffixWins) {
  const SniRoutes r = routes();
  EXPECT_EQ(r.match("x.eu.example.com"), 3u);
  EXPECT_EQ(r.match("y.x.eu.example.com"), 3u);
  EXPECT_EQ(r.match("eu.example.com"), 2u) << "*.eu.example.com does not cover eu.example.com";
  EXPECT_EQ(r.match("other.com"), 5u);
  EXPECT_EQ(r.match("com"), kDefault);
}

TEST(SniRoutes, CaseAndTrailingDotAreIgnored) {
  SniRoutes r(kDefault);
  ASSERT_EQ(r.add("WWW.Example.COM.", 1), "");
  ASSERT_EQ(r.add("*.Example.NET", 2), "");
  EXPECT_EQ(r.match("www.example.com"), 1u);
  EXPECT_EQ(r.match("WwW.eXaMpLe.CoM"), 1u);
  EXPECT_EQ(r.match("www.example.com."), 1u);
  EXPECT_EQ(r.match("A.B.EXAMPLE.net"), 2u);
  EXPECT_NE(r.add("www.EXAMPLE.com", 3), "") << "the same name in another case is a duplicate";
  EXPECT_NE(r.add("*.example.net.", 3), "");
}

TEST(SniRoutes, NoNameOrAnInvalidOneGoesToTheDefault) {
  const SniRoutes r = routes();
  EXPECT_EQ(r.match(""), kDefault);
  EXPECT_EQ(r.match(".example.com"), kDefault);
  EXPECT_EQ(r.match("a..example.com"), kDefault);
  EXPECT_EQ(r.match("nothing.org"), kDefault);
  EXPECT_EQ(SniRoutes().match("www.example.com"), kNoCluster);
  EXPECT_EQ(SniRoutes().default_cluster(), kNoCluster);
}

TEST(SniRoutes, BadPatternsSayWhy) {
  for (const char* bad : {"", "*", "*.", "*foo.com", "a.*.com", "*.*.com", "foo*.com", "www.*",
                          ".example.com", "a..com", "a b.com", "a/b", "..", "."}) {
    const std::string why = sni_pattern_error(bad);
    EXPECT_NE(why, "") << '"' << bad << '"';
    SniRoutes r(kDefault);
    EXPECT_EQ(r.add(bad, 1), why);
    EXPECT_EQ(r.size(), 0u);
  }
  EXPECT_NE(sni_pattern_error("*foo.com").find("\"*foo.com\""), std::string::npos)
      << "the reason names the pattern";
  EXPECT_NE(sni_pattern_error("a.*.com").find("first label"), std::string::npos);
  EXPECT_EQ(sni_pattern_error(std::string(256, 'a')).empty(), false);
  EXPECT_EQ(sni_pattern_error(std::string(255, 'a')), "");
  for (const char* good : {"x", "example.com", "*.example.com", "*.com", "a-b_c.example."}) {
    EXPECT_EQ(sni_pattern_error(good), "") << good;
  }
}

TEST(SniRoutes, DuplicatesAreReportedAndKeepTheFirst) {
  SniRoutes r(kDefault);
  ASSERT_EQ(r.add("*.example.com", 1), "");
  const std::string why = r.add("*.example.com", 2);
  EXPECT_NE(why.find("twice"), std::string::npos) << why;
  EXPECT_EQ(r.match("a.example.com"), 1u);
  // The same suffix exact and as a wildcard are two routes.
  EXPECT_EQ(r.add("example.com", 3), "");
}

}  // namespace
}  // namespace ringlb::protocol
