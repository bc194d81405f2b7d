// The TLS origination phase (tls_connect) and the pump's transform towards the backend, through
// the fake seam with a real OpenSSL server on the backend's fake socket: the handshake, and
// each way it can fail (verification, EOF, a reset, a failed send, the deadline) as a failed
// connect that moves on to the next backend.
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <filesystem>

#include "metrics/tls_stats.h"
#include "tests/proxy/tls_wire.h"
#include "tests/tls/test_pki.h"

namespace ringlb::proxy::testing {
namespace {

using metrics::CloseReason;
using metrics::TlsResult;
using tls::pki::RawSide;

constexpr int kClient = kClientSlot;
constexpr int kBackend = 200;
constexpr int kSecond = 201;

const tls::pki::StandardPki& pki() {
  static const tls::pki::StandardPki p = [] {
    const std::string dir = ::testing::TempDir() + "/origin-pki";
    std::filesystem::create_directories(dir);
    return tls::pki::StandardPki(dir);
  }();
  return p;
}

Config origin_config(const std::string& sni = "www.example.com") {
  Config c = default_config();
  c.buffer_size = 65536;
  TlsClusterConfig t;
  t.sni = sni;
  t.ca_file = pki().ca_file;
  t.alpn = {"http/1.1"};
  c.clusters[0].tls = t;
  return c;
}

struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};

std::unique_ptr<SSL_CTX, CtxFree> server_ctx(const TlsCertificateFiles& cert) {
  std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_server_method()));
  SSL_CTX_use_certificate_chain_file(ctx.get(), cert.cert.c_str());
  SSL_CTX_use_PrivateKey_file(ctx.get(), cert.key.c_str(), SSL_FILETYPE_PEM);
  return ctx;
}

uint64_t failures(Harness& h, TlsResult r) {
  return h.shared->registry->tls->cluster("web", 0)->failures[static_cast<size_t>(r)].get();
}

// A client arrived and the first backend's TCP connect is done: the phase has begun. `from`:
// where the phase's requests start (for a TlsWire).
uint32_t connected(Harness& h, size_t* from = nullptr) {
  const uint32_t id = h.arrive(kClient);
  h.give_socket(h.last(Request::kSocket), kBackend);
  if (from != nullptr) *from = h.mark();
  h.complete(h.last(Request::kConnect), 0);
  return id;
}

TEST(TlsConnect, TheHandshakeThenPlaintextBothWays) {
  Harness h(origin_config());
  auto ctx = server_ctx(pki().www_ec);
  RawSide backend(ctx.get(), true);
  size_t from = 0;
  const uint32_t id = connected(h, &from);
  EXPECT_EQ(h.session(id).phase, Phase::kTlsConnect);
  const Request hello = h.last_on(Request::kSend, kBackend);
  EXPECT_EQ(hello.bytes.substr(0, 1), "\x16") << "a handshake record first";
  TlsWire wire(h, backend, kBackend, from);
  wire.run();
  ASSERT_TRUE(backend.done()) << backend.error_text;
  ASSERT_EQ(h.session(id).phase, Phase::kPump);
  const char* sent = SSL_get_servername(backend.ssl(), TLSEXT_NAMETYPE_host_name);
  EXPECT_STREQ(sent, "www.example.com");

  h.receive(h.last_on(Request::kRecv, kClient), "query");
  wire.run();
  EXPECT_EQ(backend.got, "query");
  backend.write("answer");
  wire.run();
  const Request down = h.last_on(Request::kSendBuffer, kClient);
  EXPECT_EQ(down.bytes, "answer");
  EXPECT_EQ(failures(h, TlsResult::k_tls_protocol) + failures(h, TlsResult::k_tls_bad_certificate), 0u);
}

TEST(TlsConnect, ABackendFromAnotherCaFailsVerificationAndTheNextBackendIsTried) {
  Harness h(origin_config());
  auto ctx = server_ctx(pki().other_client);
  RawSide stranger(ctx.get(), true);
  size_t from = 0;
  const uint32_t id = connected(h, &from);
  const size_t sockets = h.count(Request::kSocket);
  TlsWire wire(h, stranger, kBackend, from);
  wire.run();
  EXPECT_EQ(h.session(id).phase, Phase::kConnect) << "a failed connect: retried";
  EXPECT_EQ(h.count(Request::kSocket), sockets + 1);
  EXPECT_TRUE(h.has(Request::kClose)) << "the first backend's socket is closed";
  EXPECT_EQ(failures(h, TlsResult::k_tls_bad_certificate), 1u);
  EXPECT_EQ(h.env->stats.backends[0].connect_failures.get() + h.env->stats.backends[1].connect_failures.get(), 1u)
      << "and counted as the backend's failed connect";
  // The second backend is a good one.
  auto good_ctx = server_ctx(pki().www_ec);
  RawSide good(good_ctx.get(), true);
  h.give_socket(h.last(Request::kSocket), kSecond);
  const size_t second_from = h.mark();
  h.complete(h.last(Request::kConnect), 0);
  TlsWire second(h, good, kSecond, second_from);
  second.run();
  EXPECT_EQ(h.session(id).phase, Phase::kPump);
}

TEST(TlsConnect, AnotherNameThanTheCertificatesIsRefused) {
  Harness h(origin_config("wrong.example.net"));
  auto ctx = server_ctx(pki().www_ec);
  RawSide backend(ctx.get(), true);
  size_t from = 0;
  const uint32_t id = connected(h, &from);
  TlsWire wire(h, backend, kBackend, from);
  wire.run();
  EXPECT_EQ(h.session(id).phase, Phase::kConnect);
  EXPECT_EQ(failures(h, TlsResult::k_tls_bad_certificate), 1u);
}

TEST(TlsConnect, EofAResetOrAFailedSendMidHandshakeIsAFailedConnect) {
  for (int what = 0; what < 3; ++what) {
    Harness h(origin_config());
    auto ctx = server_ctx(pki().www_ec);
    RawSide backend(ctx.get(), true);
    size_t from = 0;
    const uint32_t id = connected(h, &from);
    TlsWire wire(h, backend, kBackend, from);
    if (what == 2) {
      wire.fail_next_send(-EPIPE);
      wire.run();
    } else {
      h.complete(h.last_on(Request::kSend, kBackend), static_cast<int>(h.last_on(Request::kSend, kBackend).len));
      const Request recv = h.last_on(Request::kRecv, kBackend);
      if (what == 0) {
        h.receive(recv, "");
      } else {
        h.complete(recv, -ECONNRESET);
      }
    }
    EXPECT_EQ(h.session(id).phase, Phase::kConnect) << what;
    EXPECT_EQ(failures(h, TlsResult::k_tls_protocol), 1u) << what;
    EXPECT_EQ(h.ops->in_use, 0) << what;
  }
}

TEST(TlsConnect, NoBuffersMakesTheRecvWaitAndTheHandshakeStillEnds) {
  Harness h(origin_config());
  auto ctx = server_ctx(pki().www_ec);
  RawSide backend(ctx.get(), true);
  size_t from = 0;
  const uint32_t id = connected(h, &from);
  TlsWire wire(h, backend, kBackend, from);
  wire.sync();  // the hello reaches the backend
  const size_t recvs = h.count(Request::kRecv);
  wire.fail_recv(-ENOBUFS);
  EXPECT_EQ(h.count(Request::kRecv), recvs + 1);
  wire.run();
  EXPECT_EQ(h.session(id).phase, Phase::kPump);
}

TEST(TlsConnect, ASilentBackendMeetsTheConnectDeadline) {
  Config c = origin_config();
  c.clusters[0].connect_attempts = 1;
  Harness h(c);
  const uint32_t id = connected(h);
  h.complete(h.last_on(Request::kSend, kBackend), static_cast<int>(h.last_on(Request::kSend, kBackend).len));
  h.advance(c.clusters[0].connect_timeout.count() * kMs + kMs);
  EXPECT_NE(h.session(id).phase, Phase::kTlsConnect);
  EXPECT_EQ(h.session(id).closed_as, CloseReason::k_connect_failed);
}

TEST(TlsConnect, TheBackendsCloseNotifyIsAFinToTheClient) {
  Harness h(origin_config());
  auto ctx = server_ctx(pki().www_ec);
  RawSide backend(ctx.get(), true);
  size_t from = 0;
  const uint32_t id = connected(h, &from);
  TlsWire wire(h, backend, kBackend, from);
  wire.run();
  ASSERT_EQ(h.session(id).phase, Phase::kPump);
  SSL_shutdown(backend.ssl());
  wire.run();
  h.end_batch();  // shutdowns go at the end of a batch
  EXPECT_TRUE(h.has(Request::kShutdown)) << "the client gets a FIN";
  EXPECT_EQ(h.last(Request::kShutdown).slot, kClient);
}

}  // namespace
}  // namespace ringlb::proxy::testing
