#include "server/base/acl.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>
#include <vector>

namespace ringlb {
namespace {

sockaddr_storage address(const char* ip) {
  sockaddr_storage ss{};
  auto* in = reinterpret_cast<sockaddr_in*>(&ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1) << ip;
    in6->sin6_family = AF_INET6;
  }
  return ss;
}

std::vector<Cidr> cidrs(const std::vector<std::string>& texts) {
  std::vector<Cidr> out;
  for (const std::string& t : texts) {
    Cidr c;
    std::string error;
    EXPECT_TRUE(parse_cidr(t, &c, &error)) << t << ": " << error;
    out.push_back(c);
  }
  return out;
}

bool allows(const Acl& acl, const char* ip) {
  const sockaddr_storage ss = address(ip);
  return acl.allows(reinterpret_cast<const sockaddr*>(&ss));
}

TEST(Cidr, ParsesAndRefusesWithAReason) {
  Cidr c;
  std::string error;
  ASSERT_TRUE(parse_cidr("10.0.0.0/8", &c, &error)) << error;
  EXPECT_EQ(c.family, AF_INET);
  EXPECT_EQ(c.prefix_len, 8u);
  ASSERT_TRUE(parse_cidr("192.0.2.7", &c, &error));
  EXPECT_EQ(c.prefix_len, 32u);
  ASSERT_TRUE(parse_cidr("2001:db8::/32", &c, &error));
  EXPECT_EQ(c.family, AF_INET6);
  ASSERT_TRUE(parse_cidr("::/0", &c, &error));
  EXPECT_EQ(c.prefix_len, 0u);
  for (const char* bad : {"10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/08", "10.0.0.0/x",
                          "example.com", "", "2001:db8::1/32", "::/129"}) {
    error.clear();
    EXPECT_FALSE(parse_cidr(bad, &c, &error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(Acl, DenyWinsAllowListsAreExclusiveAndEmptyAllowsAll) {
  EXPECT_TRUE(allows(Acl(), "203.0.113.1"));
  const Acl deny_only({}, cidrs({"203.0.113.0/24", "2001:db8::/32"}));
  EXPECT_FALSE(allows(deny_only, "203.0.113.77"));
  EXPECT_TRUE(allows(deny_only, "203.0.114.1"));
  EXPECT_FALSE(allows(deny_only, "2001:db8:1::5"));
  EXPECT_TRUE(allows(deny_only, "2001:db9::5"));
  const Acl allow_with_hole(cidrs({"10.0.0.0/8"}), cidrs({"10.1.0.0/16"}));
  EXPECT_TRUE(allows(allow_with_hole, "10.2.3.4"));
  EXPECT_FALSE(allows(allow_with_hole, "10.1.3.4"));  // deny wins
  EXPECT_FALSE(allows(allow_with_hole, "11.0.0.1"));  // not in the allow list
  EXPECT_FALSE(allows(allow_with_hole, "::1"));
}

TEST(Acl, OddPrefixesAndMappedAddresses) {
  const Acl acl(cidrs({"192.168.4.0/22", "2001:db8:8000::/33"}), {});
  EXPECT_TRUE(allows(acl, "192.168.7.255"));
  EXPECT_FALSE(allows(acl, "192.168.8.0"));
  EXPECT_TRUE(allows(acl, "2001:db8:8000::1"));
  EXPECT_FALSE(allows(acl, "2001:db8:7fff::1"));
  // A v4 client on a dual-stack [::] listener shows up as ::ffff:a.b.c.d.
  EXPECT_TRUE(allows(acl, "::ffff:192.168.5.1"));
  EXPECT_FALSE(allows(acl, "::ffff:192.168.9.1"));
}

// An IPv4-mapped IPv6 block is the IPv4 block it maps: it matches IPv4 peers, and the IPv4
// clients of a dual-stack listener (::ffff:a.b.c.d). It used to pass and match neither.
TEST(Acl, Ipv4MappedBlocksMatchIpv4Peers) {
  Cidr c;
  std::string error;
  ASSERT_TRUE(parse_cidr("::ffff:10.0.0.0/104", &c, &error)) << error;
  EXPECT_EQ(c.family, AF_INET);
  EXPECT_EQ(c.prefix_len, 8u);
  ASSERT_TRUE(parse_cidr("::ffff:192.0.2.7", &c, &error)) << error;
  EXPECT_EQ(c.family, AF_INET);
  EXPECT_EQ(c.prefix_len, 32u);
  ASSERT_TRUE(parse_cidr("::ffff:0:0/96", &c, &error)) << error;  // every IPv4 address
  EXPECT_EQ(c.family, AF_INET);
  EXPECT_EQ(c.prefix_len, 0u);
  EXPECT_FALSE(parse_cidr("::ffff:10.0.0.1/104", &c, &error));  // host bits, as for 10.0.0.1/8
  const Acl deny({}, cidrs({"::ffff:10.0.0.0/104"}));
  EXPECT_FALSE(allows(deny, "10.1.2.3"));
  EXPECT_FALSE(allows(deny, "::ffff:10.1.2.3"));
  EXPECT_TRUE(allows(deny, "11.0.0.1"));
  EXPECT_TRUE(allows(deny, "::1"));
  const Acl allow(cidrs({"::ffff:192.0.2.0/120"}), {});
  EXPECT_TRUE(allows(allow, "192.0.2.9"));
  EXPECT_TRUE(allows(allow, "::ffff:192.0.2.9"));
  EXPECT_FALSE(allows(allow, "192.0.3.9"));
  // Other IPv6 blocks stay IPv6: ::/0 is every IPv6 peer, not every peer.
  const Acl v6(cidrs({"::/0"}), {});
  EXPECT_TRUE(allows(v6, "2001:db8::1"));
  EXPECT_FALSE(allows(v6, "10.0.0.1"));
}

}  // namespace
}  // namespace ringlb
