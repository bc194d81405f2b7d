// The control socket's command language, without sockets: what parses, what each refusal says,
// that quoting round-trips, and the backends table's cells.
#include "server/control/command.h"

#include <gtest/gtest.h>

#include "server/control/backends_table.h"

namespace ringlb::control {
namespace {

Command parsed(const std::string& line) {
  Command c;
  const Status s = parse_command(line, &c);
  EXPECT_TRUE(s.ok()) << line << ": " << s.message();
  return c;
}

std::string refusal(const std::string& line) {
  Command c;
  return parse_command(line, &c).message();
}

TEST(Command, ParsesEveryVerb) {
  EXPECT_EQ(parsed("backends").verb, Verb::kBackends);
  EXPECT_EQ(parsed("  connections\t").verb, Verb::kConnections);
  EXPECT_EQ(parsed("listeners").verb, Verb::kListeners);
  EXPECT_EQ(parsed("overrides").verb, Verb::kOverrides);
  const Command w = parsed("set-weight web 10.0.0.1:80 3");
  EXPECT_EQ(w.verb, Verb::kSetWeight);
  EXPECT_EQ(w.cluster, "web");
  EXPECT_EQ(w.backend, "10.0.0.1:80");
  EXPECT_EQ(w.weight, 3u);
  EXPECT_EQ(parsed("set-weight web 10.0.0.1:80 0").weight, 0u);
  EXPECT_EQ(parsed("set-weight web 10.0.0.1:80 1000").weight, 1000u);
  EXPECT_FALSE(parsed("set-weight web 10.0.0.1:80 reset").weight.has_value());
  EXPECT_EQ(parsed("drain web b").verb, Verb::kDrain);
  EXPECT_EQ(parsed("disable web b").verb, Verb::kDisable);
  EXPECT_EQ(parsed("enable web b").verb, Verb::kEnable);
  EXPECT_TRUE(parsed("enable web b").changes_backend());
  EXPECT_FALSE(parsed("backends").changes_backend());
}

TEST(Command, RefusalsNameTheBadPart) {
  EXPECT_EQ(refusal(""), "empty command (listeners, connections, backends, overrides, set-weight, drain, disable, enable)");
  EXPECT_EQ(refusal("frobnicate x"),
            "unknown command 'frobnicate' (listeners, connections, backends, overrides, set-weight, drain, disable, enable)");
  EXPECT_EQ(refusal("ready"),
            "unknown command 'ready' (listeners, connections, backends, overrides, set-weight, drain, disable, enable)");
  EXPECT_EQ(refusal("set-weight web b"), "set-weight takes 3 arguments, not 2: set-weight CLUSTER BACKEND N|reset");
  EXPECT_EQ(refusal("drain web"), "drain takes 2 arguments, not 1: drain CLUSTER BACKEND");
  EXPECT_EQ(refusal("enable web b c"), "enable takes 2 arguments, not 3: enable CLUSTER BACKEND");
  EXPECT_EQ(refusal("backends extra"), "backends takes 0 arguments, not 1: backends");
  EXPECT_EQ(refusal("set-weight web b 1001"), "weight '1001' must be 0 to 1000 or reset");
  EXPECT_EQ(refusal("set-weight web b -1"), "weight '-1' must be 0 to 1000 or reset");
  EXPECT_EQ(refusal("set-weight web b 3x"), "weight '3x' must be 0 to 1000 or reset");
  EXPECT_EQ(refusal("set-weight web b 99999999999999999999"),
            "weight '99999999999999999999' must be 0 to 1000 or reset");
  EXPECT_EQ(refusal("drain we/b b"), "unknown cluster 'we/b'");
  EXPECT_EQ(refusal("drain web \"\""), "empty backend name");
  EXPECT_EQ(refusal("drain web \"b"), "unterminated quote at byte 11");
  EXPECT_EQ(refusal("drain web \"b\"c"), "text right after the closing quote at byte 14");
  EXPECT_EQ(refusal("drain web \"\\n\""), "bad escape at byte 12 (only \\\" and \\\\)");
  EXPECT_EQ(refusal("drain web a\"b"), "a quote or backslash inside the word 'drain web a...'");
  EXPECT_EQ(refusal(std::string("drain web a\x01")), "control character in the command (byte 12)");
  EXPECT_EQ(refusal("drain web a\r"), "control character in the command (byte 12)");
  // A long unknown word is cut short in the message.
  const std::string message = refusal(std::string(500, 'x'));
  EXPECT_LT(message.size(), 200u) << message;
}

TEST(Command, QuotedWordsRoundTrip) {
  const Command c = parsed(R"(drain web "unix:/run/a b \"c\" \\d")");
  EXPECT_EQ(c.backend, R"(unix:/run/a b "c" \d)");
  EXPECT_EQ(format_command(c), R"(drain web "unix:/run/a b \"c\" \\d")");
  Command again;
  ASSERT_TRUE(parse_command(format_command(c), &again).ok());
  EXPECT_EQ(again, c);
  EXPECT_EQ(quote_word("10.0.0.1:80"), "10.0.0.1:80");
  EXPECT_EQ(quote_word(""), "\"\"");
  EXPECT_EQ(join_words({"set-weight", "web", "a b", "reset"}), "set-weight web \"a b\" reset");
  EXPECT_EQ(format_command(parsed("set-weight web b reset")), "set-weight web b reset");
  EXPECT_EQ(format_command(parsed("set-weight  web  b  7")), "set-weight web b 7");
}

TEST(BackendsTable, StateAndWeightCells) {
  BackendStatus s;
  s.weight = s.configured_weight = 1;
  EXPECT_EQ(state_text(s), "up");
  EXPECT_EQ(weight_text(s), "1");
  s.up = false;
  EXPECT_EQ(state_text(s), "down");
  s.admin = balancer::Admin::kDrain;
  EXPECT_EQ(state_text(s), "drain (down)");
  s.up = true;
  EXPECT_EQ(state_text(s), "drain");
  s.weight = 0;
  EXPECT_EQ(weight_text(s), "0 (configured 1)");
  s.runtime_weight = 3;
  EXPECT_EQ(weight_text(s), "0 (set 3, configured 1)");
  s.admin = balancer::Admin::kDisabled;
  s.up = false;
  EXPECT_EQ(state_text(s), "maint");
  s.admin = balancer::Admin::kEnabled;
  s.weight = 3;
  EXPECT_EQ(weight_text(s), "3 (configured 1)");
  // A runtime weight equal to the configured one is still shown as set.
  s.weight = 1;
  s.runtime_weight = 1;
  EXPECT_EQ(weight_text(s), "1 (configured 1)");
  // Slow start: an up, enabled backend's ramp shows in STATE; a drained one's does not.
  s.up = true;
  s.ramp_percent = 40;
  EXPECT_EQ(state_text(s), "up (ramp 40%)");
  s.up = false;
  EXPECT_EQ(state_text(s), "down");
  s.up = true;
  s.admin = balancer::Admin::kDrain;
  EXPECT_EQ(state_text(s), "drain");
}

TEST(BackendsTable, ColumnsAreAligned) {
  BackendStatus a;
  a.cluster = "web";
  a.backend = "127.0.0.1:8081";
  a.weight = a.configured_weight = 1;
  a.active = 12;
  a.origin = "file";
  BackendStatus b = a;
  b.cluster = "api-long";
  b.backend = "10.0.0.2:80";
  b.admin = balancer::Admin::kDrain;
  b.weight = 0;
  b.active.reset();
  b.origin = "dns:api.internal:80";
  a.check = "http";
  a.last_failure = "bad_status: HTTP 503 from GET /healthz";
  b.check = "tcp";
  EXPECT_EQ(format_backends({a, b}),
            "CLUSTER   BACKEND         STATE  WEIGHT            ACTIVE  ORIGIN               CHECK  LAST-FAILURE\n"
            "web       127.0.0.1:8081  up     1                 12      file                 http   bad_status: HTTP 503 from GET /healthz\n"
            "api-long  10.0.0.2:80     drain  0 (configured 1)  -       dns:api.internal:80  tcp    -\n");
}

}  // namespace
}  // namespace ringlb::control
