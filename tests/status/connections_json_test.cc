// The workers' diagnostics lines joined into connection objects: both sides of a connection in
// one, a backend name with spaces (a unix: path) kept whole, lines that do not parse skipped, and
// the pages cut as asked.
#include "server/status/connections_json.h"

#include <gtest/gtest.h>

namespace ringlb::status {
namespace {

const char kText[] =
    "worker=0 conn=5 side=client local=127.0.0.1:80 peer=10.0.0.9:5555 rtt_us=17 rttvar_us=8 retransmits=0 "
    "bytes_acked=10 bytes_received=20\n"
    "worker=1 conn=5 side=client local=127.0.0.1:80 peer=10.0.0.8:6666 rtt_us=1 rttvar_us=2 retransmits=3 "
    "bytes_acked=4 bytes_received=5\n"
    "garbage that is not a line of ours\n"
    "worker=0 conn=5 side=backend backend=unix:/run/my api.sock local=unix: peer=unix:/run/my api.sock\n"
    "worker=x conn=1 side=client local=a peer=b\n"
    "worker=2 conn=1 side=sideways local=a peer=b\n";

TEST(ConnectionsJson, JoinsBothSidesOfAConnection) {
  const Json all = parse_connections(kText);
  ASSERT_EQ(all.size(), 2u) << all.dump();
  const Json& first = all[0];
  EXPECT_EQ(first["worker"], 0);
  EXPECT_EQ(first["id"], 5);
  EXPECT_EQ(first["client"]["peer"], "10.0.0.9:5555");
  EXPECT_EQ(first["client"]["rtt_us"], 17);
  EXPECT_EQ(first["client"]["bytes_received"], 20);
  EXPECT_EQ(first["backend"]["name"], "unix:/run/my api.sock");  // spaces kept
  EXPECT_EQ(first["backend"]["peer"], "unix:/run/my api.sock");
  EXPECT_EQ(first["backend"]["local"], "unix:");
  const Json& second = all[1];
  EXPECT_EQ(second["worker"], 1);  // the same id in another worker is another connection
  EXPECT_EQ(second["client"]["retransmits"], 3);
  EXPECT_TRUE(second["backend"].is_null());  // its backend line is not there (yet)
}

TEST(ConnectionsJson, NothingToList) {
  EXPECT_EQ(parse_connections(""), Json::array());
  EXPECT_EQ(parse_connections("no live connections\n"), Json::array());
}

TEST(ConnectionsJson, PagesAreCutAsAsked) {
  Json all = Json::array();
  for (int i = 0; i < 5; ++i) all.push_back(Json{{"id", i}});
  Json page = connections_page(all, 1, 2);
  EXPECT_EQ(page["total"], 5);
  EXPECT_EQ(page["offset"], 1);
  EXPECT_EQ(page["limit"], 2);
  ASSERT_EQ(page["connections"].size(), 2u);
  EXPECT_EQ(page["connections"][0]["id"], 1);
  EXPECT_EQ(page["connections"][1]["id"], 2);
  EXPECT_EQ(connections_page(all, 4, 10)["connections"].size(), 1u);
  EXPECT_EQ(connections_page(all, 9, 10)["connections"].size(), 0u);
}

}  // namespace
}  // namespace ringlb::status
