// A terminating listener's contexts facing plain OpenSSL clients in memory: the certificate per
// SNI (RSA or ECDSA by the client's signature algorithms, wildcard, default), ALPN by the
// server's order, TLS 1.1 refused, client certificates (required: none, a good one, another
// CA's), renegotiation refused, one SSL_CTX per worker, and reloads that leave open
// connections alone. Tickets and the session cache: ticket_keys_test.
#include "server/tls/server_context.h"

#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include <functional>

#include "server/tls/stream.h"
#include "tests/support/process.h"
#include "tests/tls/stream_pair.h"
#include "tests/tls/test_pki.h"

namespace ringlb::tls {
namespace {

using pki::RawSide;
using pki::StandardPki;
using pki::StreamSide;
using ringlb::testing::TempDir;

SslCtxPtr raw_client_ctx(const std::string& ca_file = "") {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ca_file.empty()) {
    SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  return ctx;
}

std::function<void(SSL*)> sni(const char* name) {
  return [name](SSL* ssl) { SSL_set_tlsext_host_name(ssl, name); };
}

KeyType served_key(SSL* client) {
  X509* peer = SSL_get0_peer_certificate(client);
  if (peer == nullptr) return KeyType::kOther;
  return EVP_PKEY_get_base_id(X509_get0_pubkey(peer)) == EVP_PKEY_RSA ? KeyType::kRsa : KeyType::kEcdsa;
}

std::string served_cn(SSL* client) {
  X509* peer = SSL_get0_peer_certificate(client);
  char cn[256] = "";
  if (peer != nullptr) X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof(cn));
  return cn;
}

struct Connection {
  std::unique_ptr<Stream> server;
  std::unique_ptr<RawSide> client;
  std::unique_ptr<StreamSide> server_side;
};

Connection connect(const std::shared_ptr<const ServerContextSet>& set, SSL_CTX* client_ctx,
                   const std::function<void(SSL*)>& prepare = nullptr, size_t worker = 0) {
  Connection c;
  c.server = std::make_unique<Stream>(set->worker(worker));
  c.server_side = std::make_unique<StreamSide>(c.server.get());
  c.client = std::make_unique<RawSide>(client_ctx, false, prepare);
  pki::run(*c.client, *c.server_side);
  return c;
}

class ServerContextTest : public ::testing::Test {
 protected:
  ServerContextTest() : pki_(dir_.path()) {}

  std::shared_ptr<const ServerContextSet> build(TlsListenerConfig c, unsigned workers = 2) {
    if (c.certificates.empty()) c.certificates = pki_.server_certificates();
    std::shared_ptr<const ServerContextSet> set;
    std::vector<std::string> warnings;
    const Status s = ServerContextSet::build(c, {.listener = "https", .workers = workers}, &set, &warnings);
    EXPECT_TRUE(s.ok()) << s.message();
    return set;
  }

  TempDir dir_;
  StandardPki pki_;
};

TEST_F(ServerContextTest, CertificatePerSniAndSignatureAlgorithms) {
  auto set = build({});
  auto ctx = raw_client_ctx(pki_.ca_file);
  struct Case {
    const char* what;
    std::function<void(SSL*)> prepare;
    std::string cn;
    KeyType key;
  };
  const Case cases[] = {
      {"exact name, a client offering ECDSA", sni("www.example.com"), "www.example.com", KeyType::kEcdsa},
      {"exact name, a client offering RSA only",
       [](SSL* ssl) {
         SSL_set_tlsext_host_name(ssl, "www.example.com");
         SSL_set1_sigalgs_list(ssl, "RSA-PSS+SHA256:RSA+SHA256");
       },
       "www.example.com", KeyType::kRsa},
      {"a TLS 1.2 client signing ECDSA but with RSA key exchange only",
       [](SSL* ssl) {
         SSL_set_tlsext_host_name(ssl, "www.example.com");
         SSL_set_max_proto_version(ssl, TLS1_2_VERSION);
         SSL_set_cipher_list(ssl, "ECDHE-RSA-AES128-GCM-SHA256");
       },
       "www.example.com", KeyType::kRsa},
      {"the wildcard covers one label", sni("api.example.org"), "*.example.org", KeyType::kEcdsa},
      {"not two labels: the default", sni("a.b.example.org"), "www.example.com", KeyType::kEcdsa},
      {"no SNI: the default, ECDSA twin", nullptr, "www.example.com", KeyType::kEcdsa},
      {"no SNI, RSA only: the default's RSA certificate",
       [](SSL* ssl) { SSL_set1_sigalgs_list(ssl, "RSA-PSS+SHA256"); }, "www.example.com", KeyType::kRsa},
      {"a name in upper case", sni("WWW.EXAMPLE.COM"), "www.example.com", KeyType::kEcdsa},
  };
  for (const Case& c : cases) {
    // The client verifies the name it asked for (the default serves others unverified here).
    Connection conn = connect(set, ctx.get(), c.prepare);
    ASSERT_TRUE(conn.server->handshake_done()) << c.what << ": " << conn.server->error() << conn.client->error_text;
    EXPECT_EQ(served_cn(conn.client->ssl()), c.cn) << c.what;
    EXPECT_EQ(served_key(conn.client->ssl()), c.key) << c.what;
    ASSERT_NE(conn.server->certificate(), nullptr);
    EXPECT_EQ(conn.server->certificate()->key_type(), c.key) << c.what;
  }
}

TEST_F(ServerContextTest, AlpnByTheServersOrder) {
  TlsListenerConfig c;
  c.alpn = {"h2", "http/1.1"};
  auto set = build(c);
  auto ctx = raw_client_ctx();
  const auto offer = [](std::string wire) {
    return [wire](SSL* ssl) {
      SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(wire.data()), static_cast<unsigned>(wire.size()));
    };
  };
  EXPECT_EQ(connect(set, ctx.get(), offer(alpn_wire({"http/1.1", "h2"}))).server->alpn(), "h2");
  EXPECT_EQ(connect(set, ctx.get(), offer(alpn_wire({"http/1.1"}))).server->alpn(), "http/1.1");
  Connection none = connect(set, ctx.get(), offer(alpn_wire({"spdy/3"})));
  EXPECT_TRUE(none.server->handshake_done()) << "nothing in common: no ALPN, no failure";
  EXPECT_EQ(none.server->alpn(), "");
  EXPECT_EQ(connect(set, ctx.get()).server->alpn(), "") << "a client without ALPN";
  auto plain = build({});
  EXPECT_EQ(connect(plain, ctx.get(), offer(alpn_wire({"h2"}))).server->alpn(), "") << "a listener without alpn";
}

TEST_F(ServerContextTest, OldVersionsAreRefused) {
  auto set = build({});
  auto tls11 = raw_client_ctx();
  SSL_CTX_set_min_proto_version(tls11.get(), TLS1_1_VERSION);
  SSL_CTX_set_max_proto_version(tls11.get(), TLS1_1_VERSION);
  SSL_CTX_set_cipher_list(tls11.get(), "DEFAULT:@SECLEVEL=0");  // so the client may offer it at all
  Connection c = connect(set, tls11.get());
  EXPECT_FALSE(c.server->handshake_done());
  EXPECT_EQ(c.server->failure(), Failure::kProtocol);
  EXPECT_NE(c.server->error().find("unsupported protocol"), std::string::npos) << c.server->error();
  EXPECT_TRUE(c.client->failed);

  TlsListenerConfig only13;
  only13.min_version = TlsMinVersion::k13;
  auto strict = build(only13);
  auto tls12 = raw_client_ctx();
  SSL_CTX_set_max_proto_version(tls12.get(), TLS1_2_VERSION);
  Connection d = connect(strict, tls12.get());
  EXPECT_EQ(d.server->failure(), Failure::kProtocol) << "min-version = \"1.3\" refuses TLS 1.2";
  EXPECT_TRUE(connect(build({}), tls12.get()).server->handshake_done()) << "the default takes 1.2";
}

TEST_F(ServerContextTest, ClientCertificates) {
  TlsListenerConfig required;
  required.client_ca = pki_.ca_file;
  required.client_verify = TlsClientVerify::kRequired;
  TlsListenerConfig optional = required;
  optional.client_verify = TlsClientVerify::kOptional;
  const auto with_cert = [](const TlsCertificateFiles& f) {
    return [f](SSL* ssl) {
      SSL_use_certificate_file(ssl, f.cert.c_str(), SSL_FILETYPE_PEM);
      SSL_use_PrivateKey_file(ssl, f.key.c_str(), SSL_FILETYPE_PEM);
    };
  };
  for (bool tls13 : {true, false}) {
    auto ctx = raw_client_ctx();
    if (!tls13) SSL_CTX_set_max_proto_version(ctx.get(), TLS1_2_VERSION);
    auto set = build(required);
    Connection none = connect(set, ctx.get());
    EXPECT_EQ(none.server->failure(), Failure::kNoCertificate) << none.server->error();
    EXPECT_STREQ(failure_name(none.server->failure()), "tls_no_certificate");
    Connection other = connect(set, ctx.get(), with_cert(pki_.other_client));
    EXPECT_EQ(other.server->failure(), Failure::kBadCertificate) << other.server->error();
    EXPECT_NE(other.server->error().find("unable to get local issuer certificate"), std::string::npos)
        << other.server->error();
    Connection good = connect(set, ctx.get(), with_cert(pki_.client));
    ASSERT_TRUE(good.server->handshake_done()) << good.server->error();
    EXPECT_EQ(good.server->peer_cn(), "alice");
    EXPECT_EQ(good.server->verify_result(), X509_V_OK);

    auto opt = build(optional);
    Connection anonymous = connect(opt, ctx.get());
    EXPECT_TRUE(anonymous.server->handshake_done()) << "optional: none is fine";
    EXPECT_FALSE(anonymous.server->peer_certificate());
    EXPECT_EQ(anonymous.server->proxy_tlvs(true).ssl_client, kPp2ClientSsl);
    Connection bad = connect(opt, ctx.get(), with_cert(pki_.other_client));
    EXPECT_EQ(bad.server->failure(), Failure::kBadCertificate) << "optional: a bad one is still refused";
  }
}

TEST_F(ServerContextTest, RenegotiationIsRefused) {
  auto set = build({});
  auto ctx = raw_client_ctx();
  SSL_CTX_set_max_proto_version(ctx.get(), TLS1_2_VERSION);
  Connection c = connect(set, ctx.get());
  ASSERT_TRUE(c.server->handshake_done());
  ASSERT_EQ(SSL_renegotiate(c.client->ssl()), 1);
  SSL_do_handshake(c.client->ssl());
  pki::run(*c.client, *c.server_side);
  // The server answers no_renegotiation, which OpenSSL's client takes as the end. (OpenSSL 3.0
  // servers refuse a client's renegotiation by default too; SSL_OP_NO_RENEGOTIATION says it
  // whatever the build, and also stops origination's backends: client_context_test.)
  EXPECT_EQ(SSL_renegotiate_pending(c.client->ssl()), 1) << "the server never took part";
  EXPECT_TRUE(c.client->error || c.client->failed);
  EXPECT_NE(SSL_get_options(c.server->ssl()) & SSL_OP_NO_RENEGOTIATION, 0u);
}

TEST_F(ServerContextTest, OneContextPerWorker) {
  auto set = build({}, 3);
  ASSERT_EQ(set->workers(), 3u);
  EXPECT_NE(set->worker(0)->ctx(), set->worker(1)->ctx());
  EXPECT_NE(set->worker(1)->ctx(), set->worker(2)->ctx());
  EXPECT_NE(set->worker(0)->certificates().at(0).key(), set->worker(1)->certificates().at(0).key())
      << "each worker decodes its own keys";
  auto ctx = raw_client_ctx(pki_.ca_file);
  for (size_t w = 0; w < 3; ++w) EXPECT_TRUE(connect(set, ctx.get(), sni("www.example.com"), w).server->handshake_done());
  const auto expiries = set->expiries();
  ASSERT_EQ(expiries.size(), 3u);
  EXPECT_EQ(expiries[0].name, "www.example.com (RSA)");
  EXPECT_EQ(expiries[1].name, "www.example.com (ECDSA)");
  EXPECT_EQ(expiries[2].name, "*.example.org");
  EXPECT_EQ(expiries[2].not_after, set->worker(0)->certificates().at(2).not_after());
}

// A reload builds a new set from the files as they are now: new connections get the new
// certificate, an open one goes on with the context it started with, and a broken file refuses
// the new set as a whole.
TEST_F(ServerContextTest, AReloadLeavesOpenConnectionsAlone) {
  TlsListenerConfig c;
  c.certificates = {pki_.www_ec};
  auto old_set = build(c);
  auto ctx = raw_client_ctx();
  Connection before = connect(old_set, ctx.get(), sni("www.example.com"));
  ASSERT_TRUE(before.server->handshake_done());

  // The file is replaced in place: a certificate for a new name.
  const pki::Issued renewed = pki::issue({.cn = "www.example.com", .dns = {"www.example.com", "new.example.com"}, .key_index = 5});
  pki::write_text(pki_.www_ec.cert, pki::pem(renewed.cert.get()));
  pki::write_text(pki_.www_ec.key, pki::pem(renewed.key.get()));
  auto new_set = build(c);
  old_set.reset();  // the holder swapped it out; only the open connection keeps it
  Connection after = connect(new_set, ctx.get(), sni("new.example.com"));
  ASSERT_TRUE(after.server->handshake_done());
  EXPECT_EQ(after.server->certificate()->names().back(), "new.example.com");
  EXPECT_EQ(before.server->certificate()->names().size(), 2u) << "the open connection's certificate is the old one";
  before.client->write("still here");
  pki::run(*before.client, *before.server_side);
  EXPECT_EQ(before.server_side->got, "still here");
  ASSERT_EQ(before.server->write("yes", 3), 3);
  pki::run(*before.client, *before.server_side);
  EXPECT_EQ(before.client->got, "yes");

  pki::write_text(pki_.www_ec.key, "broken\n");
  std::shared_ptr<const ServerContextSet> refused;
  std::vector<std::string> warnings;
  const Status s = ServerContextSet::build(c, {.listener = "https", .workers = 2}, &refused, &warnings);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind(pki_.www_ec.key + ": no PEM private key in it", 0), 0u) << s.message();
  EXPECT_FALSE(refused);
  EXPECT_TRUE(connect(new_set, ctx.get(), sni("new.example.com")).server->handshake_done()) << "the last good set serves on";
}

TEST_F(ServerContextTest, BuildNamesEveryBrokenFile) {
  TlsListenerConfig c;
  c.certificates = {{dir_.path() + "/nope.crt", pki_.www_ec.key}};
  c.client_ca = dir_.path() + "/nope-ca.pem";
  c.client_verify = TlsClientVerify::kRequired;
  c.ticket_keys_file = dir_.path() + "/nope.keys";
  std::shared_ptr<const ServerContextSet> set;
  std::vector<std::string> warnings;
  const Status s = ServerContextSet::build(c, {.listener = "https"}, &set, &warnings);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.lines(), (std::vector<std::string>{dir_.path() + "/nope.crt: No such file or directory",
                                                 dir_.path() + "/nope-ca.pem: No such file or directory",
                                                 dir_.path() + "/nope.keys: No such file or directory"}));
  EXPECT_EQ(s.exit_code(), kExitBadInput);
}

}  // namespace
}  // namespace ringlb::tls
