// A probe driven by hand: what it sends, in which order, and how replies end it. No sockets.
#include "server/health/probe.h"

#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
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

TEST(Probe, UdpSendsOneDatagramAndJudgesEachReplyWhole) {
  CheckSpec spec;
  spec.type = CheckType::kUdp;
  spec.send = std::string("\x12\x34\x01\x00", 4);
  spec.expect = std::string("\x12\x34\x81", 3);
  Probe p;
  p.start(&spec, "", "h", nullptr);
  EXPECT_EQ(take_send(p), spec.send);
  reply(p, std::string("\x12\x34\x81\x80 and the rest", 18));
  EXPECT_EQ(p.next().kind, Probe::Step::kDone);
  EXPECT_EQ(p.result(), Result::k_ok);

  // A datagram without it fails at once (it is the whole reply).
  p.start(&spec, "", "h", nullptr);
  take_send(p);
  reply(p, "nope");
  EXPECT_EQ(p.result(), Result::k_bad_response);
  EXPECT_EQ(p.reason(), "expected \"\\x124\\x81\", got \"nope\"");

  // 0 bytes is an empty datagram, judged as one: no check-expect, it passes.
  CheckSpec any = spec;
  any.expect.clear();
  p.start(&any, "", "h", nullptr);
  take_send(p);
  ASSERT_EQ(p.next().kind, Probe::Step::kRecv);
  p.on_received(0);
  EXPECT_EQ(p.result(), Result::k_ok);
}

TEST(Probe, UdpPortUnreachableIsRefusedWithItsReason) {
  CheckSpec spec;
  spec.type = CheckType::kUdp;
  spec.send = "ping";
  Probe p;
  p.start(&spec, "", "h", nullptr);
  take_send(p);
  ASSERT_EQ(p.next().kind, Probe::Step::kRecv);
  p.on_received(-ECONNREFUSED);  // the kernel's word for the backend's ICMP port unreachable
  EXPECT_EQ(p.result(), Result::k_refused);
  EXPECT_EQ(p.reason(), "ICMP port unreachable (recv: Connection refused)");
  p.start(&spec, "", "h", nullptr);
  ASSERT_EQ(p.next().kind, Probe::Step::kSend);
  p.on_sent(-ECONNREFUSED);
  EXPECT_EQ(p.result(), Result::k_refused);
  EXPECT_EQ(p.reason(), "ICMP port unreachable (send: Connection refused)");
  p.start(&spec, "", "h", nullptr);
  take_send(p);
  p.next();
  p.on_received(-ECANCELED);
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

// A TLS server in memory (self-signed P-256 certificate made here), one SSL object per
// connection on one SSL_CTX, so that its tickets resume across connections as a real server's.
class MemoryTlsServer {
 public:
  explicit MemoryTlsServer(int max_version = TLS1_3_VERSION, bool tickets = true) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("backend"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
    SSL_CTX_use_certificate(ctx_, cert);
    SSL_CTX_use_PrivateKey(ctx_, key);
    X509_free(cert);
    EVP_PKEY_free(key);
    SSL_CTX_set_max_proto_version(ctx_, max_version);
    if (!tickets) SSL_CTX_set_num_tickets(ctx_, 0);  // TLS 1.3: no ticket after the handshake
    SSL_CTX_set_session_id_context(ctx_, reinterpret_cast<const unsigned char*>("t"), 1);
  }
  ~MemoryTlsServer() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  void accept() {  // a new connection
    SSL_free(ssl_);
    ssl_ = SSL_new(ctx_);
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in_, -1);
    SSL_set_bio(ssl_, in_, out_);
    SSL_set_accept_state(ssl_);
  }
  // Takes the client's bytes and answers what they call for (handshake, tickets).
  void feed(const char* data, size_t len) {
    BIO_write(in_, data, static_cast<int>(len));
    if (!SSL_is_init_finished(ssl_)) SSL_do_handshake(ssl_);
    char sink[512];
    if (SSL_is_init_finished(ssl_)) while (SSL_read(ssl_, sink, sizeof(sink)) > 0) {
      }
  }
  std::string take_output() {
    char* data = nullptr;
    const long n = BIO_get_mem_data(out_, &data);
    std::string out(data, n > 0 ? static_cast<size_t>(n) : 0);
    (void)BIO_reset(out_);
    return out;
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;
  BIO* out_ = nullptr;
};

// One tls check from start to verdict against `server` (a new connection). The probe's
// optional waits it reports in *optional_waits; one the server has nothing for times out.
Result tls_check(Probe& p, const CheckSpec& spec, const TlsContext& ctx, MemoryTlsServer& server,
                 int* optional_waits) {
  server.accept();
  p.start(&spec, "", "h", &ctx);
  std::string pending;  // server bytes the probe has not taken yet
  for (int i = 0; i < 100 && !p.done(); ++i) {
    const Probe::Step s = p.next();
    if (s.kind == Probe::Step::kDone) break;
    if (s.kind == Probe::Step::kSend) {
      server.feed(s.data, s.len);
      p.on_sent(static_cast<int>(s.len));
      continue;
    }
    if (s.optional) ++*optional_waits;
    pending += server.take_output();
    if (pending.empty()) {
      p.on_received(-ECANCELED);  // nothing comes: its (short) timeout fires
      continue;
    }
    const size_t n = std::min(pending.size(), s.len);
    memcpy(s.buf, pending.data(), n);
    pending.erase(0, n);
    p.on_received(static_cast<int>(n));
  }
  return p.result();
}

// A tls check's parts for the tests below: the checker's context, one backend's probe (its
// session kept from check to check) and the server it checks.
struct TlsChecks {
  explicit TlsChecks(int max_version = TLS1_3_VERSION, bool tickets = true) : server(max_version, tickets) {
    spec.type = CheckType::kTls;
  }
  Result check() { return tls_check(p, spec, ctx, server, &waits); }
  TlsContext ctx;
  MemoryTlsServer server;
  CheckSpec spec;
  Probe p;
  int waits = 0;  // the probe's optional waits (for a TLS 1.3 ticket) so far
};

// TLS 1.3: the first check is a full handshake that waits (briefly) for the ticket sent after
// it; the next ones resume it and skip the certificate.
TEST(Probe, TlsChecksResumeTheSessionOfTheLastCheck) {
  TlsChecks t;
  ASSERT_EQ(t.check(), Result::k_ok) << t.p.reason();
  EXPECT_FALSE(t.p.resumed());
  EXPECT_EQ(t.waits, 1) << "waited for the TLS 1.3 ticket";
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(t.check(), Result::k_ok) << t.p.reason();
    EXPECT_TRUE(t.p.resumed()) << "check " << i + 2;
  }
}

// TLS 1.2 gives its session in the handshake: nothing to wait for after it.
TEST(Probe, Tls12ResumesWithoutWaiting) {
  TlsChecks t(TLS1_2_VERSION);
  ASSERT_EQ(t.check(), Result::k_ok) << t.p.reason();
  ASSERT_EQ(t.check(), Result::k_ok) << t.p.reason();
  EXPECT_TRUE(t.p.resumed());
  EXPECT_EQ(t.waits, 0);
}

// A TLS 1.3 server without tickets: the first check's short wait ends without one, and is not
// repeated at every check; nothing resumes, and every check passes.
TEST(Probe, ServerWithoutTicketsIsWaitedForOnce) {
  TlsChecks t(TLS1_3_VERSION, false);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(t.check(), Result::k_ok) << t.p.reason();
    EXPECT_FALSE(t.p.resumed());
  }
  EXPECT_EQ(t.waits, 1);
  // ...but tried again every kTicketRetryEvery checks: one slow ticket is not the end of it.
  for (uint32_t i = 3; i < Probe::kTicketRetryEvery + 1; ++i) ASSERT_EQ(t.check(), Result::k_ok);
  EXPECT_EQ(t.waits, 2);
}

// A failed check drops the session: the check after it is a full handshake.
TEST(Probe, AFailedCheckMakesTheNextHandshakeAFullOne) {
  TlsChecks t;
  ASSERT_EQ(t.check(), Result::k_ok);
  t.p.start(&t.spec, "", "h", &t.ctx);
  take_send(t.p);
  t.p.on_received(-ECONNRESET);
  ASSERT_EQ(t.p.result(), Result::k_tls_error);
  ASSERT_EQ(t.check(), Result::k_ok) << t.p.reason();
  EXPECT_FALSE(t.p.resumed());
  ASSERT_EQ(t.check(), Result::k_ok) << t.p.reason();
  EXPECT_TRUE(t.p.resumed());
}

}  // namespace
}  // namespace ringlb::health
