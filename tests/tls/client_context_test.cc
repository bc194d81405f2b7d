// Origination in memory, ringlb's client engine against its server engine: verification of the
// chain and the name (on by default; the wrong CA and the wrong name refused, an IP checked as
// an IP), the system's CA file, SNI, a client certificate, ALPN, and resumption kept per backend.
#include "server/tls/client_context.h"

#include <openssl/ssl.h>

#include <gtest/gtest.h>

#include "server/tls/server_context.h"
#include "server/tls/stream.h"
#include "tests/support/process.h"
#include "tests/tls/stream_pair.h"
#include "tests/tls/test_pki.h"

namespace ringlb::tls {
namespace {

using pki::StandardPki;
using pki::StreamSide;
using ringlb::testing::ScopedEnv;
using ringlb::testing::TempDir;

class ClientContextTest : public ::testing::Test {
 protected:
  ClientContextTest() : pki_(dir_.path()) {}

  std::shared_ptr<const ServerContextSet> servers(TlsListenerConfig c = {}) {
    if (c.certificates.empty()) c.certificates = pki_.server_certificates();
    std::shared_ptr<const ServerContextSet> set;
    std::vector<std::string> warnings;
    const Status s = ServerContextSet::build(c, {.listener = "backend"}, &set, &warnings);
    EXPECT_TRUE(s.ok()) << s.message();
    return set;
  }
  std::shared_ptr<ClientContext> client(TlsClusterConfig c) {
    std::shared_ptr<const ClientContextSet> set;
    const Status s = ClientContextSet::build(c, "web", 2, &set);
    EXPECT_TRUE(s.ok()) << s.message();
    return set ? set->worker(0) : nullptr;
  }
  TlsClusterConfig trusting(TlsClusterConfig c = {}) {
    c.ca_file = pki_.ca_file;
    return c;
  }

  struct Conn {
    std::unique_ptr<Stream> server, client;
  };
  Conn connect(const std::shared_ptr<const ServerContextSet>& set, const std::shared_ptr<ClientContext>& ctx,
               ClientOptions options = {}) {
    Conn c{std::make_unique<Stream>(set->worker(0)), std::make_unique<Stream>(ctx, options)};
    StreamSide s(c.server.get()), cl(c.client.get());
    c.client->handshake();
    pki::run(cl, s);
    // A byte from the server makes the client read what came after the handshake (TLS 1.3's
    // tickets).
    if (c.server->handshake_done() && c.server->write("x", 1) == 1) pki::run(cl, s);
    return c;
  }

  TempDir dir_;
  StandardPki pki_;
};

TEST_F(ClientContextTest, VerifiesTheChainAndTheName) {
  auto set = servers();
  Conn ok = connect(set, client(trusting({.sni = "www.example.com"})));
  ASSERT_TRUE(ok.client->handshake_done()) << ok.client->error();
  EXPECT_EQ(ok.client->verify_result(), X509_V_OK);
  EXPECT_EQ(ok.server->server_name(), "www.example.com") << "the SNI is sent";

  TlsClusterConfig wrong_ca{.sni = "www.example.com"};
  wrong_ca.ca_file = pki_.other_ca_file;
  Conn untrusted = connect(set, client(wrong_ca));
  EXPECT_EQ(untrusted.client->failure(), Failure::kBadCertificate);
  EXPECT_NE(untrusted.client->error().find("unable to get local issuer certificate"), std::string::npos)
      << untrusted.client->error();

  Conn wrong_name = connect(set, client(trusting({.sni = "api.example.com"})));
  EXPECT_EQ(wrong_name.client->failure(), Failure::kBadCertificate);
  EXPECT_NE(wrong_name.client->error().find("hostname mismatch"), std::string::npos) << wrong_name.client->error();
  EXPECT_EQ(wrong_name.client->verify_result(), X509_V_ERR_HOSTNAME_MISMATCH);

  // Without an sni, the name the caller passes (the backend's host name or address) is checked.
  Conn by_host = connect(set, client(trusting()), {.verify_name = "www.example.com"});
  EXPECT_TRUE(by_host.client->handshake_done()) << by_host.client->error();
  Conn by_ip = connect(set, client(trusting()), {.verify_name = "127.0.0.1"});
  EXPECT_EQ(by_ip.client->failure(), Failure::kBadCertificate) << "no IP name in the certificate";
  EXPECT_EQ(by_ip.client->verify_result(), X509_V_ERR_IP_ADDRESS_MISMATCH);

  Conn unchecked = connect(set, client({.sni = "api.example.com", .verify = false}));
  EXPECT_TRUE(unchecked.client->handshake_done()) << "verify = false takes anything";
}

TEST_F(ClientContextTest, AnIpAddressIsCheckedAsOne) {
  const pki::Issued ca = pki::issue({.cn = "ip CA", .key_index = 6, .ca = true});
  TlsListenerConfig lc;
  lc.certificates = {pki::write_pair(dir_.path(), "ip", pki::issue({.cn = "backend", .ips = {"127.0.0.1"}, .key_index = 4}, &ca))};
  auto set = servers(lc);
  TlsClusterConfig c;
  c.ca_file = pki::write_certs(dir_.path(), "ip-ca.pem", {ca.cert.get()});
  EXPECT_TRUE(connect(set, client(c), {.verify_name = "127.0.0.1"}).client->handshake_done());
  EXPECT_EQ(connect(set, client(c), {.verify_name = "127.0.0.2"}).client->failure(), Failure::kBadCertificate);
}

TEST_F(ClientContextTest, TheSystemStoreByDefault) {
  EXPECT_FALSE(system_ca_file().empty());
  auto set = servers();
  Conn system = connect(set, client({.sni = "www.example.com"}));
  EXPECT_EQ(system.client->failure(), Failure::kBadCertificate) << "the test CA is not a system CA";
  // OpenSSL's SSL_CERT_FILE names the system's file: there, the test CA is trusted.
  ScopedEnv env({{"SSL_CERT_FILE", pki_.ca_file}});
  EXPECT_EQ(system_ca_file(), pki_.ca_file);
  EXPECT_TRUE(connect(set, client({.sni = "www.example.com"})).client->handshake_done());
}

TEST_F(ClientContextTest, ClientCertificateAndAlpn) {
  TlsListenerConfig mtls;
  mtls.client_ca = pki_.ca_file;
  mtls.client_verify = TlsClientVerify::kRequired;
  mtls.alpn = {"http/1.1", "h2"};
  auto set = servers(mtls);
  TlsClusterConfig c = trusting({.sni = "www.example.com", .cert = pki_.client.cert, .key = pki_.client.key,
                                 .alpn = {"h2", "http/1.1"}});
  Conn conn = connect(set, client(c));
  ASSERT_TRUE(conn.server->handshake_done()) << conn.server->error();
  EXPECT_EQ(conn.server->peer_cn(), "alice");
  EXPECT_EQ(conn.client->alpn(), "http/1.1") << "the server's order";
  Conn without = connect(set, client(trusting({.sni = "www.example.com"})));
  EXPECT_EQ(without.server->failure(), Failure::kNoCertificate);
}

TEST_F(ClientContextTest, EachBackendResumesItsOwnSession) {
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    auto set = servers();
    auto ctx = client(trusting({.sni = "www.example.com"}));
    SSL_CTX_set_max_proto_version(ctx->ctx(), version);
    EXPECT_FALSE(connect(set, ctx, {.backend = 1}).client->resumed());
    ASSERT_NE(ctx->session(1), nullptr) << "backend 1's session kept";
    EXPECT_EQ(ctx->session(2), nullptr);
    EXPECT_TRUE(connect(set, ctx, {.backend = 1}).client->resumed());
    EXPECT_TRUE(connect(set, ctx, {.backend = 1}).client->resumed()) << "and again, with the renewed ticket";
    EXPECT_FALSE(connect(set, ctx, {.backend = 2}).client->resumed()) << "backend 2 has its own";
    EXPECT_EQ(ctx->sessions(), 2u);
    ctx->forget(1);
    EXPECT_FALSE(connect(set, ctx, {.backend = 1}).client->resumed());
    // A failed verification drops the backend's session: the next try is a full one.
    TlsClusterConfig bad = trusting({.sni = "api.example.com"});
    auto strict = client(bad);
    EXPECT_FALSE(connect(set, strict, {.backend = 3}).client->handshake_done());
    EXPECT_EQ(strict->session(3), nullptr);
  }
}

// A backend asking to renegotiate (a TLS 1.2 HelloRequest) is refused: renegotiation is off.
TEST_F(ClientContextTest, ABackendCannotRenegotiate) {
  SslCtxPtr server_ctx(SSL_CTX_new(TLS_server_method()));
  SSL_CTX_set_max_proto_version(server_ctx.get(), TLS1_2_VERSION);
  ASSERT_EQ(SSL_CTX_use_certificate_chain_file(server_ctx.get(), pki_.www_ec.cert.c_str()), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey_file(server_ctx.get(), pki_.www_ec.key.c_str(), SSL_FILETYPE_PEM), 1);
  pki::RawSide backend(server_ctx.get(), /*server=*/true);
  Stream ours(client(trusting({.sni = "www.example.com"})), {});
  StreamSide c(&ours);
  ours.handshake();
  pki::run(c, backend);
  ASSERT_TRUE(ours.handshake_done()) << ours.error();
  ASSERT_EQ(SSL_renegotiate(backend.ssl()), 1);
  SSL_do_handshake(backend.ssl());
  pki::run(c, backend);
  EXPECT_EQ(SSL_renegotiate_pending(backend.ssl()), 1) << "ringlb's client never took part";
}

TEST_F(ClientContextTest, BuildNamesBrokenFiles) {
  std::shared_ptr<const ClientContextSet> set;
  TlsClusterConfig c;
  c.ca_file = dir_.path() + "/missing.pem";
  c.cert = pki_.client.cert;
  c.key = pki_.other_client.key;
  const Status s = ClientContextSet::build(c, "web", 1, &set);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.lines(), (std::vector<std::string>{
                           dir_.path() + "/missing.pem: No such file or directory",
                           pki_.other_client.key + ": the key does not match the certificate in " + pki_.client.cert}));
}

}  // namespace
}  // namespace ringlb::tls
