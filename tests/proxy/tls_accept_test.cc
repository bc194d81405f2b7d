// The TLS termination phase (tls_accept) and the pump's TLS transform, through the fake seam,
// with a real OpenSSL client on the other end of the fake socket: the handshake, its failures
// and their close reasons, short sends, buffer waits, close_notify as a FIN both ways, and the
// records that arrive right behind the handshake.
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <filesystem>

#include "metrics/tls_stats.h"
#include "tests/proxy/tls_wire.h"
#include "tests/tls/test_pki.h"

namespace ringlb::proxy::testing {
namespace {

using metrics::CloseReason;
using tls::pki::RawSide;

constexpr int kClient = kClientSlot;
constexpr int kBackend = 200;

const tls::pki::StandardPki& pki() {
  static const tls::pki::StandardPki p = [] {
    const std::string dir = ::testing::TempDir() + "/proxy-pki";
    std::filesystem::create_directories(dir);
    return tls::pki::StandardPki(dir);
  }();
  return p;
}

Config tls_config(TlsClientVerify verify = TlsClientVerify::kNone) {
  Config c = default_config();
  c.buffer_size = 65536;
  TlsListenerConfig t;
  t.certificates = pki().server_certificates();
  t.alpn = {"h2"};
  t.handshake_timeout = Millis(500);
  if (verify != TlsClientVerify::kNone) {
    t.client_ca = pki().ca_file;
    t.client_verify = verify;
  }
  c.listen[0].tls = t;
  return c;
}

struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};

std::unique_ptr<SSL_CTX, CtxFree> client_ctx(const TlsCertificateFiles* cert = nullptr) {
  std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_load_verify_locations(ctx.get(), pki().ca_file.c_str(), nullptr);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  static const unsigned char alpn[] = "\x02h2";
  SSL_CTX_set_alpn_protos(ctx.get(), alpn, 3);
  if (cert != nullptr) {
    SSL_CTX_use_certificate_chain_file(ctx.get(), cert->cert.c_str());
    SSL_CTX_use_PrivateKey_file(ctx.get(), cert->key.c_str(), SSL_FILETYPE_PEM);
  }
  return ctx;
}

std::function<void(SSL*)> sni(const std::string& name) {
  return [name](SSL* ssl) { SSL_set_tlsext_host_name(ssl, name.c_str()); };
}

uint64_t handshakes(Harness& h, metrics::TlsResult result) {
  return h.shared->registry->tls->listener("in", 0)->handshakes[static_cast<size_t>(result)].get();
}

TEST(TlsAccept, AHandshakeThenRouteConnectAndPlaintextBothWays) {
  Harness h(tls_config());
  auto ctx = client_ctx();
  RawSide client(ctx.get(), false, sni("www.example.com"));
  TlsWire wire(h, client, kClient);
  const uint32_t id = h.arrive(kClient);
  EXPECT_EQ(h.session(id).phase, Phase::kTlsAccept);
  wire.run();
  ASSERT_TRUE(client.done()) << client.error_text;
  EXPECT_FALSE(client.failed);
  EXPECT_EQ(h.session(id).phase, Phase::kConnect) << "routed once the handshake was done";
  EXPECT_EQ(handshakes(h, metrics::TlsResult::k_ok), 1u);
  h.give_socket(h.last(Request::kSocket), kBackend);
  h.complete(h.last(Request::kConnect), 0);
  ASSERT_EQ(h.session(id).phase, Phase::kPump);

  // Client to backend: a record is decrypted into the buffer that goes to the backend.
  client.write("GET /");
  wire.run();
  const Request up = h.last_on(Request::kSendBuffer, kBackend);
  EXPECT_EQ(up.bytes, "GET /");
  h.complete(up, 5);
  // Backend to client: plaintext in, a record out, which the client reads.
  h.receive(h.last_on(Request::kRecv, kBackend), "200 OK");
  wire.run();
  EXPECT_EQ(client.got, "200 OK");
  EXPECT_EQ(h.session(id).bytes[kUp], 5u);
  EXPECT_EQ(h.session(id).bytes[kDown], 6u);
}

TEST(TlsAccept, GarbageIsAnsweredWithAnAlertThenClosedAsTlsProtocol) {
  Harness h(tls_config());
  const uint32_t id = h.arrive(kClient);
  h.receive(h.last_on(Request::kRecv, kClient), "GET / HTTP/1.0\r\n\r\n");
  // OpenSSL answers a plain HTTP request without an alert; anything it says goes out first.
  if (h.has(Request::kSend)) {
    const Request alert = h.last_on(Request::kSend, kClient);
    EXPECT_EQ(alert.bytes.substr(0, 1), "\x15") << "an alert record";
    h.complete(alert, static_cast<int>(alert.len));
  }
  EXPECT_EQ(h.session(id).closed_as, CloseReason::k_tls_protocol);
  EXPECT_EQ(handshakes(h, metrics::TlsResult::k_tls_protocol), 1u);
  EXPECT_FALSE(h.has(Request::kSocket)) << "never a backend";
}

TEST(TlsAccept, EofOrAResetMidHandshakeClosesWithoutABackend) {
  for (int res : {0, -ECONNRESET}) {
    Harness h(tls_config());
    auto ctx = client_ctx();
    RawSide client(ctx.get(), false, sni("www.example.com"));
    TlsWire wire(h, client, kClient);
    const uint32_t id = h.arrive(kClient);
    wire.answer(client.take_output().substr(0, 40));  // part of the hello
    ASSERT_TRUE(wire.pending_recv()) << "more is wanted";
    if (res == 0) {
      wire.answer("");
    } else {
      wire.fail_recv(res);
    }
    wire.run();  // an alert, if OpenSSL has one to say
    EXPECT_NE(h.session(id).phase, Phase::kTlsAccept);
    EXPECT_EQ(h.session(id).closed_as, res == 0 ? CloseReason::k_tls_protocol : CloseReason::k_reset) << res;
    EXPECT_EQ(handshakes(h, metrics::TlsResult::k_tls_protocol), 1u) << "counted as a failed handshake";
    EXPECT_FALSE(h.has(Request::kSocket));
    EXPECT_EQ(h.ops->in_use, 0) << "the buffer went back";
  }
}

TEST(TlsAccept, TheHandshakeTimeoutClosesWithItsReason) {
  Harness h(tls_config());
  const uint32_t id = h.arrive(kClient);
  h.advance(400 * kMs);
  EXPECT_EQ(h.session(id).phase, Phase::kTlsAccept);
  h.advance(200 * kMs);
  EXPECT_EQ(h.session(id).closed_as, CloseReason::k_tls_handshake_timeout);
  h.complete(h.last_on(Request::kRecv, kClient), -ECANCELED);
  EXPECT_EQ(handshakes(h, metrics::TlsResult::k_tls_handshake_timeout), 1u);
}

TEST(TlsAccept, AShortSendOfTheServersFlightSendsTheRestFromWhereItStopped) {
  Harness h(tls_config());
  auto ctx = client_ctx();
  RawSide client(ctx.get(), false, sni("www.example.com"));
  TlsWire wire(h, client, kClient);
  const size_t from = h.mark();
  h.arrive(kClient);
  wire.short_send = 100;
  wire.run();
  EXPECT_TRUE(client.done()) << client.error_text;
  std::vector<Request> sends;
  for (const Request& r : h.since(from)) {
    if (r.kind == Request::kSend) sends.push_back(r);
  }
  ASSERT_GE(sends.size(), 2u);
  EXPECT_EQ(sends[1].bytes, sends[0].bytes.substr(100)) << "the rest, from where the first stopped";
  EXPECT_TRUE(h.has(Request::kSocket));
}

TEST(TlsAccept, AFailedOrEmptySendOfTheFlightCloses) {
  for (int res : {-EPIPE, 0}) {
    Harness h(tls_config());
    auto ctx = client_ctx();
    RawSide client(ctx.get(), false, sni("www.example.com"));
    TlsWire wire(h, client, kClient);
    const uint32_t id = h.arrive(kClient);
    wire.fail_next_send(res);
    wire.answer(client.take_output());
    wire.run();
    EXPECT_EQ(h.session(id).closed_as, res == 0 ? CloseReason::k_error : CloseReason::k_reset) << res;
    EXPECT_FALSE(h.has(Request::kSocket));
  }
}

TEST(TlsAccept, NoBuffersMakesTheRecvWaitForOne) {
  Harness h(tls_config());
  auto ctx = client_ctx();
  RawSide client(ctx.get(), false, sni("www.example.com"));
  TlsWire wire(h, client, kClient);
  const uint32_t id = h.arrive(kClient);
  const size_t before = h.count(Request::kRecv);
  wire.fail_recv(-ENOBUFS);
  EXPECT_EQ(h.session(id).phase, Phase::kTlsAccept);
  EXPECT_EQ(h.count(Request::kRecv), before + 1) << "a buffer is free: recv again at once";
  wire.run();
  EXPECT_TRUE(client.done());
}

TEST(TlsAccept, ARequiredClientCertificateMissingOrFromAnotherCaIsRefusedWithItsReason) {
  struct Case {
    const TlsCertificateFiles* cert;
    CloseReason reason;
    metrics::TlsResult result;
  };
  for (const Case& c : {Case{nullptr, CloseReason::k_tls_no_certificate, metrics::TlsResult::k_tls_no_certificate},
                        Case{&pki().other_client, CloseReason::k_tls_bad_certificate,
                             metrics::TlsResult::k_tls_bad_certificate}}) {
    Harness h(tls_config(TlsClientVerify::kRequired));
    auto ctx = client_ctx(c.cert);
    RawSide client(ctx.get(), false, sni("www.example.com"));
    TlsWire wire(h, client, kClient);
    const uint32_t id = h.arrive(kClient);
    wire.run();
    EXPECT_EQ(h.session(id).closed_as, c.reason);
    EXPECT_EQ(handshakes(h, c.result), 1u);
    EXPECT_FALSE(h.has(Request::kSocket));
  }
  Harness h(tls_config(TlsClientVerify::kRequired));
  auto ctx = client_ctx(&pki().client);
  RawSide client(ctx.get(), false, sni("www.example.com"));
  TlsWire wire(h, client, kClient);
  h.arrive(kClient);
  wire.run();
  EXPECT_TRUE(h.has(Request::kSocket)) << "a good certificate routes";
}

TEST(TlsAccept, RecordsRightBehindTheFinishedReachTheBackendFirst) {
  Harness h(tls_config());
  auto ctx = client_ctx();
  RawSide client(ctx.get(), false, sni("www.example.com"));
  TlsWire wire(h, client, kClient);
  const uint32_t id = h.arrive(kClient);
  wire.answer(client.take_output());  // the hello
  wire.sync();                        // the server's flight reaches the client: its Finished is ready
  client.write("early");              // and its first record, in the same recv
  wire.run();
  ASSERT_EQ(h.session(id).phase, Phase::kConnect);
  EXPECT_EQ(h.ops->in_use, 1) << "held for the pump";
  h.give_socket(h.last(Request::kSocket), kBackend);
  h.complete(h.last(Request::kConnect), 0);
  EXPECT_EQ(h.last_on(Request::kSendBuffer, kBackend).bytes, "early");
}

TEST(TlsAccept, CloseNotifyIsAFinToTheBackendAndTheBackendsFinACloseNotify) {
  Harness h(tls_config());
  auto ctx = client_ctx();
  RawSide client(ctx.get(), false, sni("www.example.com"));
  TlsWire wire(h, client, kClient);
  const uint32_t id = h.arrive(kClient);
  wire.run();
  h.give_socket(h.last(Request::kSocket), kBackend);
  h.complete(h.last(Request::kConnect), 0);
  SSL_shutdown(client.ssl());  // the client's half-close
  wire.run();
  h.end_batch();  // shutdowns go at the end of a batch
  const Request fin = h.last_on(Request::kShutdown, kBackend);
  h.complete(fin, 0);
  EXPECT_EQ(h.session(id).phase, Phase::kPump) << "the other direction goes on";
  h.receive(h.last_on(Request::kRecv, kBackend), "late answer");
  wire.run();
  EXPECT_EQ(client.got, "late answer");
  h.receive(h.last_on(Request::kRecv, kBackend), "");  // the backend's FIN
  wire.run();
  h.end_batch();
  wire.run();
  EXPECT_TRUE(client.eof) << "a close_notify came";
  EXPECT_EQ(h.closed(CloseReason::k_error), 0u);
}

}  // namespace
}  // namespace ringlb::proxy::testing
