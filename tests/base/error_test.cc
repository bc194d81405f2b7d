#include "server/base/error.h"

#include <gtest/gtest.h>

namespace ringlb {
namespace {

Status fails_when(bool fail) {
  if (fail) return Status::errorf("port %d: %s", 80, "in use");
  return {};
}

Status passes_through(bool fail) {
  RINGLB_RETURN_IF_ERROR(fails_when(fail));
  return Status::failure("reached the end");
}

TEST(Status, OkByDefault) {
  const Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(s.message(), "");
}

TEST(Status, ErrorCarriesMessageAndExitCode) {
  const Status s = fails_when(true);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "port 80: in use");
  EXPECT_EQ(s.exit_code(), kExitBadInput);
  EXPECT_EQ(Status::failure("no io_uring").exit_code(), kExitFailure);
  EXPECT_FALSE(Status::error("").ok());  // an error never looks ok, even without words
}

TEST(Status, ReturnIfErrorStopsAtTheFirstError) {
  EXPECT_EQ(passes_through(true).message(), "port 80: in use");
  EXPECT_EQ(passes_through(false).message(), "reached the end");
  EXPECT_EQ(passes_through(false).exit_code(), kExitFailure);
}

TEST(Status, PrefixAndAddCollectLines) {
  Status s = Status::error("in use");
  s.prefix("listen 127.0.0.1:80");
  EXPECT_EQ(s.message(), "listen 127.0.0.1:80: in use");
  Status ok;
  EXPECT_TRUE(ok.prefix("nothing").ok());
  Status all;
  all.add(Status());
  EXPECT_TRUE(all.ok());
  all.add(Status::error("a.toml:3: workers: must be at least 1"));
  all.add(Status::error("a.toml:7: backlog: must be at most 65535"));
  ASSERT_EQ(all.lines().size(), 2u);
  EXPECT_EQ(all.lines()[1], "a.toml:7: backlog: must be at most 65535");
}

StatusOr<int> half(int n) {
  if (n % 2 != 0) return Status::errorf("%d is odd", n);
  return n / 2;
}

TEST(StatusOr, HoldsAValueOrTheError) {
  const StatusOr<int> even = half(8);
  ASSERT_TRUE(even.ok());
  EXPECT_EQ(even.value(), 4);
  const StatusOr<int> odd = half(7);
  EXPECT_FALSE(odd.ok());
  EXPECT_EQ(odd.status().message(), "7 is odd");
  EXPECT_EQ(odd.status().exit_code(), kExitBadInput);
  StatusOr<std::string> text = std::string("abc");
  EXPECT_EQ(text->size(), 3u);
}

}  // namespace
}  // namespace ringlb
