// The TLS stream in memory, ringlb's server and client engines facing each other: the handshake
// and what it tells (version, cipher, ALPN, SNI, client certificate, PROXY TLVs), data both ways,
// close_notify <-> EOF in each direction (half-close), a FIN without close_notify, garbage and
// truncated handshakes, and the memory bounds of the contract in stream.h.
#include "server/tls/stream.h"

#include <gtest/gtest.h>

#include "tests/support/process.h"
#include "tests/tls/stream_pair.h"
#include "tests/tls/test_pki.h"

namespace ringlb::tls {
namespace {

using pki::StandardPki;
using pki::StreamSide;
using ringlb::testing::TempDir;

class StreamTest : public ::testing::Test {
 protected:
  StreamTest() : pki_(dir_.path()) {}

  std::shared_ptr<const ServerContextSet> server_set(TlsListenerConfig c) {
    if (c.certificates.empty()) c.certificates = pki_.server_certificates();
    std::shared_ptr<const ServerContextSet> set;
    std::vector<std::string> warnings;
    const Status s = ServerContextSet::build(c, {.listener = "https", .workers = 2}, &set, &warnings);
    EXPECT_TRUE(s.ok()) << s.message();
    return set;
  }
  std::shared_ptr<ClientContext> client_context(TlsClusterConfig c) {
    if (c.verify && c.ca_file.empty()) c.ca_file = pki_.ca_file;
    std::shared_ptr<const ClientContextSet> set;
    const Status s = ClientContextSet::build(c, "backends", 1, &set);
    EXPECT_TRUE(s.ok()) << s.message();
    return set ? set->worker(0) : nullptr;
  }

  TempDir dir_;
  StandardPki pki_;
};

TEST_F(StreamTest, HandshakeAndDataBothWays) {
  TlsListenerConfig lc;
  lc.alpn = {"h2", "http/1.1"};
  lc.client_ca = pki_.ca_file;
  lc.client_verify = TlsClientVerify::kOptional;
  auto servers = server_set(lc);
  TlsClusterConfig cc;
  cc.sni = "www.example.com";
  cc.alpn = {"http/1.1", "h2"};  // the client prefers http/1.1; the server's order wins
  cc.cert = pki_.client.cert;
  cc.key = pki_.client.key;
  Stream server(servers->worker(0));
  Stream client(client_context(cc), {.backend = 7});
  ASSERT_TRUE(server.ok() && client.ok());
  StreamSide s(&server), c(&client);
  EXPECT_EQ(client.handshake(), Stream::Handshake::kWant);
  pki::run(c, s);
  ASSERT_TRUE(server.handshake_done()) << server.error();
  ASSERT_TRUE(client.handshake_done()) << client.error();
  EXPECT_STREQ(server.version(), "TLSv1.3");
  EXPECT_STREQ(server.cipher(), client.cipher());
  EXPECT_EQ(server.alpn(), "h2");
  EXPECT_EQ(client.alpn(), "h2");
  EXPECT_EQ(server.server_name(), "www.example.com");
  ASSERT_NE(server.certificate(), nullptr);
  EXPECT_EQ(server.certificate()->files().cert, pki_.www_ec.cert) << "an OpenSSL 3 client verifies ECDSA";
  EXPECT_TRUE(server.peer_certificate());
  EXPECT_EQ(server.peer_cn(), "alice");
  EXPECT_EQ(server.verify_result(), X509_V_OK);
  EXPECT_FALSE(server.resumed());

  const ProxyTlvs t = server.proxy_tlvs(true);
  EXPECT_EQ(t.alpn, "h2");
  EXPECT_EQ(t.authority, "www.example.com");
  EXPECT_TRUE(t.ssl);
  EXPECT_EQ(t.ssl_client, kPp2ClientSsl | kPp2ClientCertConn | kPp2ClientCertSess);
  EXPECT_EQ(t.ssl_verify, 0u);
  EXPECT_EQ(t.ssl_version, "TLSv1.3");
  EXPECT_EQ(t.ssl_cn, "alice");
  EXPECT_EQ(t.ssl_cipher, server.cipher());
  EXPECT_EQ(t.ssl_sig_alg, "RSA-SHA256") << "the CA (RSA) signed the served certificate; OpenSSL's short name";
  EXPECT_EQ(t.ssl_key_alg, "EC256");
  EXPECT_EQ(t.ssl_client_cert, server.peer_der());
  EXPECT_GT(t.ssl_client_cert.size(), 200u);
  EXPECT_TRUE(server.proxy_tlvs(false).ssl_client_cert.empty()) << "the certificate only on request";

  const std::string big(300000, 'x');
  size_t sent = 0;
  while (sent < big.size()) {
    const ssize_t n = client.write(big.data() + sent, big.size() - sent);
    ASSERT_GE(n, 0);
    sent += static_cast<size_t>(n);
    pki::run(c, s);
  }
  ASSERT_EQ(server.write("pong", 4), 4);
  pki::run(c, s);
  EXPECT_EQ(s.got, big);
  EXPECT_EQ(c.got, "pong");
  EXPECT_FALSE(s.error || c.error || s.eof || c.eof);
}

// close_notify maps to EOF and back, each direction on its own: the client's end of writing is
// the server's EOF while the server goes on writing, then the server's end is the client's EOF.
TEST_F(StreamTest, CloseNotifyIsAHalfClose) {
  for (TlsMinVersion max : {TlsMinVersion::k12, TlsMinVersion::k13}) {
    auto servers = server_set({});
    auto cctx = client_context({.sni = "www.example.com"});
    if (max == TlsMinVersion::k12) SSL_CTX_set_max_proto_version(cctx->ctx(), TLS1_2_VERSION);
    Stream server(servers->worker(0));
    Stream client(cctx, {});
    StreamSide s(&server), c(&client);
    client.handshake();
    pki::run(c, s);
    ASSERT_TRUE(server.handshake_done() && client.handshake_done());
    EXPECT_STREQ(client.version(), max == TlsMinVersion::k12 ? "TLSv1.2" : "TLSv1.3");
    ASSERT_EQ(client.write("last words", 10), 10);
    client.shutdown_write();
    EXPECT_EQ(client.write("more", 4), Stream::kError) << "nothing after close_notify";
    pki::run(c, s);
    EXPECT_EQ(s.got, "last words");
    EXPECT_TRUE(s.eof) << "close_notify read as EOF";
    EXPECT_TRUE(server.eof_received());
    EXPECT_FALSE(server.truncated());
    EXPECT_FALSE(c.eof) << "the other direction is still open";
    ASSERT_EQ(server.write("reply after your EOF", 20), 20);
    pki::run(c, s);
    EXPECT_EQ(c.got, "reply after your EOF");
    EXPECT_FALSE(c.eof);
    server.shutdown_write();
    pki::run(c, s);
    EXPECT_TRUE(c.eof);
    EXPECT_FALSE(client.truncated());
    EXPECT_FALSE(s.error || c.error);
  }
}

// Origination's first bytes and FIN can come before the backend's handshake is done: writes
// wait (0 taken), and a close_notify asked for early goes out once the handshake is.
TEST_F(StreamTest, WritesWaitForTheHandshake) {
  auto servers = server_set({});
  Stream server(servers->worker(0));
  Stream client(client_context({.sni = "www.example.com"}), {});
  EXPECT_EQ(client.write("early", 5), 0) << "nothing taken before the handshake";
  client.shutdown_write();
  StreamSide s(&server), c(&client);
  client.handshake();
  pki::run(c, s);
  ASSERT_TRUE(client.handshake_done());
  EXPECT_TRUE(s.eof) << "the early close_notify went after the handshake";
  EXPECT_FALSE(server.truncated());
  EXPECT_EQ(client.write("late", 4), Stream::kError) << "the write side is over";
}

TEST_F(StreamTest, AFinWithoutCloseNotifyIsATruncatedEof) {
  auto servers = server_set({});
  Stream server(servers->worker(0));
  Stream client(client_context({.sni = "www.example.com"}), {});
  StreamSide s(&server), c(&client);
  client.handshake();
  pki::run(c, s);
  ASSERT_EQ(client.write("abc", 3), 3);
  pki::run(c, s);
  server.feed_eof();
  s.drain();
  EXPECT_EQ(s.got, "abc");
  EXPECT_TRUE(s.eof);
  EXPECT_TRUE(server.truncated());
  EXPECT_FALSE(s.error);
}

TEST_F(StreamTest, GarbageAndTruncatedHandshakesAreProtocolFailures) {
  auto servers = server_set({});
  {
    Stream server(servers->worker(0));
    const std::string http = "GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n";
    server.feed(reinterpret_cast<const uint8_t*>(http.data()), http.size());
    EXPECT_EQ(server.handshake(), Stream::Handshake::kFailed);
    EXPECT_EQ(server.failure(), Failure::kProtocol);
    EXPECT_STREQ(failure_name(server.failure()), "tls_protocol");
    EXPECT_FALSE(server.error().empty());
  }
  {
    // A TLS record whose handshake message is garbage: refused with an alert.
    Stream server(servers->worker(0));
    const std::string record = std::string("\x16\x03\x01\x00\x08", 5) + std::string("\x01\x00\x00\x04\xde\xad\xbe\xef", 8);
    server.feed(reinterpret_cast<const uint8_t*>(record.data()), record.size());
    EXPECT_EQ(server.handshake(), Stream::Handshake::kFailed);
    EXPECT_EQ(server.failure(), Failure::kProtocol);
    EXPECT_GT(server.pending_output(), 0u) << "an alert goes back";
  }
  {
    // Half a real ClientHello, then the FIN.
    Stream client(client_context({.sni = "www.example.com"}), {});
    client.handshake();
    std::string hello(client.pending_output(), '\0');
    client.take_output(hello.data(), hello.size());
    Stream server(servers->worker(0));
    server.feed(reinterpret_cast<const uint8_t*>(hello.data()), hello.size() / 2);
    EXPECT_EQ(server.handshake(), Stream::Handshake::kWant) << "half a hello: more is needed";
    server.feed_eof();
    EXPECT_EQ(server.handshake(), Stream::Handshake::kFailed);
    EXPECT_EQ(server.failure(), Failure::kProtocol);
    char buf[16];
    EXPECT_EQ(server.read(buf, sizeof(buf)), Stream::kError);
  }
  {
    Stream server(servers->worker(0));
    EXPECT_EQ(server.handshake(), Stream::Handshake::kWant);
    server.timed_out();
    EXPECT_EQ(server.failure(), Failure::kHandshakeTimeout);
    EXPECT_STREQ(failure_name(server.failure()), "tls_handshake_timeout");
    EXPECT_EQ(server.handshake(), Stream::Handshake::kFailed);
  }
}

// A writer faster than the network: write() stops taking plaintext at the output limit, so the
// ciphertext waiting stays bounded whatever is offered.
TEST_F(StreamTest, OutputIsBoundedByTheLimit) {
  auto servers = server_set({});
  Stream server(servers->worker(0));
  Stream client(client_context({.sni = "www.example.com"}), {});
  StreamSide s(&server), c(&client);
  client.handshake();
  pki::run(c, s);
  client.set_output_limit(32 * 1024);
  const std::string big(1 << 20, 'y');
  size_t taken = 0;
  for (int i = 0; i < 10; ++i) {
    const ssize_t n = client.write(big.data() + taken, big.size() - taken);
    ASSERT_GE(n, 0);
    taken += static_cast<size_t>(n);
  }
  EXPECT_LE(taken, 32u * 1024);
  EXPECT_LE(client.pending_output(), 32u * 1024 + 2 * 256) << "the limit plus records' overhead";
  EXPECT_EQ(client.write(big.data(), 1), 0) << "full: drain first";
  std::string part(1000, '\0');
  EXPECT_EQ(client.take_output(part.data(), part.size()), 1000u);
  EXPECT_GT(client.write(big.data() + taken, big.size() - taken), 0) << "room again";
}

// The fed buffer is read in place: a reader that stops early leaves it unread (the caller keeps
// the buffer), and release_input() copies the rest so the buffer can go back to the pool.
TEST_F(StreamTest, InputIsReadInPlaceUntilReleased) {
  auto servers = server_set({});
  Stream server(servers->worker(0));
  Stream client(client_context({.sni = "www.example.com"}), {});
  StreamSide s(&server), c(&client);
  client.handshake();
  pki::run(c, s);
  const std::string data(100000, 'z');
  client.set_output_limit(1 << 20);
  size_t sent = 0;
  while (sent < data.size()) sent += static_cast<size_t>(client.write(data.data() + sent, data.size() - sent));
  std::string wire(client.pending_output(), '\0');
  client.take_output(wire.data(), wire.size());
  server.feed(reinterpret_cast<const uint8_t*>(wire.data()), wire.size());
  char buf[1000];
  ASSERT_EQ(server.read(buf, sizeof(buf)), 1000);
  EXPECT_GT(server.unread_input(), 50000u) << "a slow reader: the rest waits in the caller's buffer";
  const size_t unread = server.unread_input();
  server.release_input();
  EXPECT_EQ(server.unread_input(), unread);
  wire.assign(wire.size(), '\0');  // the caller reuses its buffer
  std::string got(buf, 1000);
  for (ssize_t n; (n = server.read(buf, sizeof(buf))) > 0;) got.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(got, data);
  EXPECT_EQ(server.unread_input(), 0u);
}

}  // namespace
}  // namespace ringlb::tls
