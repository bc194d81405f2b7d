// A probe driven by hand: what it sends, in which order, and how replies end it. No sockets.
#include "server/health/probe.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

namespace ringlb::health {
namespace {

// Takes a send step whole and returns its bytes.
std::string take_send(Probe& p) {
  const Probe::Step s = p.next();
  EXPECT_EQ(s.kind, Probe::Step::kSend);
  if (s.kind != Probe::Step::kSend) return {};
  std::string bytes(s.data, s.len);
  p.on_sent(static_cast<int>(s.len));
  return bytes;
}

void reply(Probe& p, const std::string& bytes) {
  const Probe::Step s = p.next();
  ASSERT_EQ(s.kind, Probe::Step::kRecv);
  ASSERT_LE(bytes.size(), s.len);
  memcpy(s.buf, bytes.data(), bytes.size());
  p.on_received(static_cast<int>(bytes.size()));
}

TEST(Probe, TcpWithProxyHeaderSendsItThenPasses) {
  CheckSpec spec;
  Probe p;
  p.start(&spec, "PROXY UNKNOWN\r\n", "h", nullptr);
  EXPECT_EQ(take_send(p), "PROXY UNKNOWN\r\n");
  EXPECT_EQ(p.next().kind, Probe::Step::kDone);
  EXPECT_EQ(p.result(), Result::k_ok);
}

TEST(Probe, HttpAfterTheHeaderShortWritesAndA503) {
  CheckSpec spec;
  spec.type = CheckType::kHttp;
  spec.path = "/healthz";
  Probe p;
  p.start(&spec, "PROXY UNKNOWN\r\n", "10.0.0.5:80", nullptr);
  EXPECT_EQ(take_send(p), "PROXY UNKNOWN\r\n");
  // A short write: the rest goes next.
  Probe::Step s = p.next();
  ASSERT_EQ(s.kind, Probe::Step::kSend);
  const std::string request(s.data, s.len);
  EXPECT_EQ(request.rfind("GET /healthz HTTP/1.1\r\nHost: 10.0.0.5:80\r\n", 0), 0u) << request;
  p.on_sent(10);
  EXPECT_EQ(take_send(p), request.substr(10));
  reply(p, "HTTP/1.1 50");
  EXPECT_FALSE(p.done());
  reply(p, "3 Service Unavailable\r\n");
  EXPECT_EQ(p.next().kind, Probe::Step::kDone);
  EXPECT_EQ(p.result(), Result::k_bad_status);
  EXPECT_EQ(p.reason(), "HTTP 503 from GET /healthz");
}

TEST(Probe, SendExpectAndEofAndTimeout) {
  CheckSpec spec;
  spec.type = CheckType::kSendExpect;
  spec.send = "PING\r\n";
  spec.expect = "+PONG";
  Probe p;
  p.start(&spec, "", "h", nullptr);
  EXPECT_EQ(take_send(p), "PING\r\n");
  reply(p, "+PONG\r\n");
  EXPECT_EQ(p.result(), Result::k_ok);
  EXPECT_TRUE(p.done());

  p.start(&spec, "", "h", nullptr);
  take_send(p);
  ASSERT_EQ(p.next().kind, Probe::Step::kRecv);
  p.on_received(0);
  EXPECT_EQ(p.result(), Result::k_bad_response);

  p.start(&spec, "", "h", nullptr);
  take_send(p);
  ASSERT_EQ(p.next().kind, Probe::Step::kRecv);
  p.on_received(-ECANCELED);  // the linked timeout fired
  EXPECT_EQ(p.result(), Result::k_timeout);
  EXPECT_EQ(p.reason(), "no reply");
}

TEST(Probe, TlsAgainstAPlainServerIsATlsError) {
  TlsContext ctx;
  ASSERT_NE(ctx.get(), nullptr);
  CheckSpec spec;
  spec.type = CheckType::kTls;
  spec.sni = "backend.example";
  Probe p;
  p.start(&spec, "", "h", &ctx);
  const std::string hello = take_send(p);
  ASSERT_GE(hello.size(), 6u);
  EXPECT_EQ(hello[0], 0x16) << "a TLS handshake record first";
  EXPECT_NE(hello.find("backend.example"), std::string::npos) << "the SNI name is in the ClientHello";
  reply(p, "HTTP/1.1 400 Bad Request\r\n\r\n");
  EXPECT_EQ(p.next().kind, Probe::Step::kDone);
  EXPECT_EQ(p.result(), Result::k_tls_error);
  EXPECT_EQ(p.reason().rfind("TLS ", 0), 0u) << p.reason();
}

TEST(Probe, TlsHandshakeCutShortIsATlsError) {
  TlsContext ctx;
  CheckSpec spec;
  spec.type = CheckType::kHttps;
  Probe p;
  p.start(&spec, "", "h", &ctx);
  take_send(p);
  ASSERT_EQ(p.next().kind, Probe::Step::kRecv);
  p.on_received(0);
  EXPECT_EQ(p.result(), Result::k_tls_error);
}

TEST(Probe, TlsHandshakeResetIsATlsErrorAndItsDeadlineATimeout) {
  TlsContext ctx;
  CheckSpec spec;
  spec.type = CheckType::kTls;
  Probe p;
  p.start(&spec, "", "h", &ctx);
  take_send(p);
  ASSERT_EQ(p.next().kind, Probe::Step::kRecv);
  p.on_received(-ECONNRESET);
  EXPECT_EQ(p.result(), Result::k_tls_error);
  EXPECT_EQ(p.reason(), std::string("TLS handshake: recv: ") + strerror(ECONNRESET));

  p.start(&spec, "", "h", &ctx);
  take_send(p);
  ASSERT_EQ(p.next().kind, Probe::Step::kRecv);
  p.on_received(-ECANCELED);
  EXPECT_EQ(p.result(), Result::k_timeout);
  EXPECT_EQ(p.reason(), "no TLS handshake");
}

}  // namespace
}  // namespace ringlb::health
