#include "server/health/reply.h"

#include <gtest/gtest.h>

namespace ringlb::health {
namespace {

TEST(StatusLine, Parsed) {
  EXPECT_EQ(parse_status_line("HTTP/1.1 200 OK\r\n"), 200);
  EXPECT_EQ(parse_status_line("HTTP/1.0 503 Service Unavailable\r\n"), 503);
  EXPECT_EQ(parse_status_line("HTTP/1.1 204\r\n"), 204);  // no reason phrase
  EXPECT_EQ(parse_status_line("HTTP/1.1 999 X"), 999);
}

TEST(StatusLine, IncompleteWaitsGarbageFailsAtOnce) {
  EXPECT_EQ(parse_status_line(""), 0);
  EXPECT_EQ(parse_status_line("HTT"), 0);
  EXPECT_EQ(parse_status_line("HTTP/1.1 20"), 0);
  EXPECT_EQ(parse_status_line("SSH-2.0-OpenSSH"), -1);
  EXPECT_EQ(parse_status_line("+PONG\r\n"), -1);
  EXPECT_EQ(parse_status_line("HTTP/2 200 OK\r\n"), -1);
  EXPECT_EQ(parse_status_line("HTTP/1.1 2x0 OK\r\n"), -1);
  EXPECT_EQ(parse_status_line("HTTP/1.1 099 OK\r\n"), -1);
  EXPECT_EQ(parse_status_line("HTTP/1.1 2000 OK\r\n"), -1);
  EXPECT_EQ(parse_status_line("HTTP/1.1  200 OK\r\n"), -1);
}

CheckSpec http_spec(std::string body = "") {
  CheckSpec s;
  s.type = CheckType::kHttp;
  s.path = "/healthz";
  s.body = std::move(body);
  return s;
}

TEST(JudgeHttp, StatusDecidesWithoutTheBody) {
  EXPECT_EQ(judge_http("HTTP/1.1 200 OK\r\n", false, http_spec()).verdict, Verdict::kOk);
  EXPECT_EQ(judge_http("HTTP/1.1 399 X\r\n", false, http_spec()).verdict, Verdict::kOk);
  const Judgement j = judge_http("HTTP/1.1 503 Service Unavailable\r\n", false, http_spec());
  EXPECT_EQ(j.verdict, Verdict::kBadStatus);
  EXPECT_EQ(j.reason, "HTTP 503 from GET /healthz");
  EXPECT_EQ(judge_http("HTTP/1.1 2", false, http_spec()).verdict, Verdict::kMore);
  EXPECT_EQ(judge_http("HTTP/1.1 2", true, http_spec()).verdict, Verdict::kBadResponse);
  EXPECT_EQ(judge_http("", true, http_spec()).reason, "no reply to GET /healthz");
  EXPECT_EQ(judge_http("-ERR\r\n", false, http_spec()).verdict, Verdict::kBadResponse);
}

TEST(JudgeHttp, BodySubstring) {
  const CheckSpec s = http_spec("ready");
  EXPECT_EQ(judge_http("HTTP/1.1 200 OK\r\nA: ready\r\n", false, s).verdict, Verdict::kMore)
      << "a header is not the body";
  EXPECT_EQ(judge_http("HTTP/1.1 200 OK\r\n\r\nall ready", false, s).verdict, Verdict::kOk);
  EXPECT_EQ(judge_http("HTTP/1.1 200 OK\r\n\r\nnot yet", false, s).verdict, Verdict::kMore);
  const Judgement j = judge_http("HTTP/1.1 200 OK\r\n\r\nnot yet", true, s);
  EXPECT_EQ(j.verdict, Verdict::kBadResponse);
  EXPECT_NE(j.reason.find("without \"ready\""), std::string::npos) << j.reason;
  EXPECT_EQ(judge_http("HTTP/1.1 500 X\r\n\r\nready", false, s).verdict, Verdict::kBadStatus);
}

TEST(JudgeExpect, WithinTheWindow) {
  EXPECT_EQ(judge_expect("+PONG\r\n", false, "+PONG", 5).verdict, Verdict::kOk);
  EXPECT_EQ(judge_expect("+PO", false, "+PONG", 5).verdict, Verdict::kMore);
  EXPECT_EQ(judge_expect("+PO", true, "+PONG", 5).verdict, Verdict::kBadResponse);
  const Judgement j = judge_expect("-LOADING Redis is loading", false, "+PONG", 5);
  EXPECT_EQ(j.verdict, Verdict::kBadResponse);
  EXPECT_EQ(j.reason, "expected \"+PONG\", got \"-LOAD\"");
  // A banner: anywhere in the first 64 bytes, not beyond.
  EXPECT_EQ(judge_expect("220 mail ESMTP ready", false, "ESMTP", 64).verdict, Verdict::kOk);
  EXPECT_EQ(judge_expect(std::string(60, 'x') + "ESMTP", false, "ESMTP", 64).verdict, Verdict::kBadResponse);
  EXPECT_EQ(judge_expect("220 mail", false, "ESMTP", 64).verdict, Verdict::kMore);
  EXPECT_EQ(judge_expect("", true, "+PONG", 5).reason, "expected \"+PONG\", got \"\" (nothing)");
}

TEST(JudgeDatagram, OneWholeDatagramDecides) {
  // A DNS answer to query id 0x1234: the id and flags (response, no error) in the first 4 bytes.
  const std::string answer("\x12\x34\x81\x80\x00\x01\x00\x01", 8);
  const std::string expect("\x12\x34\x81\x80", 4);
  EXPECT_EQ(judge_datagram(answer, expect, 4).verdict, Verdict::kOk);
  // REFUSED (rcode 5): the same id, other flags. Failed at once: no more of the datagram comes.
  const Judgement refused = judge_datagram(std::string("\x12\x34\x81\x85", 4), expect, 4);
  EXPECT_EQ(refused.verdict, Verdict::kBadResponse);
  EXPECT_EQ(refused.reason, "expected \"\\x124\\x81\\x80\", got \"\\x124\\x81\\x85\"");
  EXPECT_EQ(judge_datagram(std::string("\x12\x34\x81", 3), expect, 4).verdict, Verdict::kBadResponse)
      << "a short datagram is all there is";
  EXPECT_EQ(judge_datagram("", expect, 4).reason, "expected \"\\x124\\x81\\x80\", got \"\" (an empty datagram)");
  // Nothing expected: any datagram back passes, an empty one too.
  EXPECT_EQ(judge_datagram("", "", 0).verdict, Verdict::kOk);
  EXPECT_EQ(judge_datagram("anything", "", 0).verdict, Verdict::kOk);
  // The window: the expected bytes anywhere in the first `within`.
  EXPECT_EQ(judge_datagram(std::string(20, 'x') + "ok", "ok", 64).verdict, Verdict::kOk);
  EXPECT_EQ(judge_datagram(std::string(70, 'x') + "ok", "ok", 64).verdict, Verdict::kBadResponse);
}

}  // namespace
}  // namespace ringlb::health
