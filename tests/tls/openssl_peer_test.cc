// The TLS engines against real peers over loopback sockets (tests/tls/socket_driver.h stands
// in for the worker): openssl s_client and Python's ssl against termination (certificate per
// SNI, RSA for an RSA-only client, ALPN, TLS 1.1 refused, client certificates, tickets resumed
// on another worker, close_notify <-> EOF both ways, garbage), and openssl s_server against
// origination (verification, client certificate, ALPN, resumption, wrong CA, wrong name).
#include <gtest/gtest.h>

#include "server/tls/client_context.h"
#include "server/tls/server_context.h"
#include "server/tls/stream.h"
#include "tests/support/net.h"
#include "tests/support/process.h"
#include "tests/tls/socket_driver.h"
#include "tests/tls/test_pki.h"

namespace ringlb::tls {
namespace {

using pki::DriveOptions;
using pki::DriveResult;
using pki::StandardPki;
using pki::TlsServer;
using ringlb::testing::ChildProcess;
using ringlb::testing::connect_loopback;
using ringlb::testing::eventually;
using ringlb::testing::quiet_port;
using ringlb::testing::run_command;
using ringlb::testing::RunResult;
using ringlb::testing::TempDir;

class OpensslPeers : public ::testing::Test {
 protected:
  OpensslPeers() : pki_(dir_.path()) {}

  std::shared_ptr<const ServerContextSet> servers(TlsListenerConfig c = {}, unsigned workers = 2) {
    if (c.certificates.empty()) c.certificates = pki_.server_certificates();
    std::shared_ptr<const ServerContextSet> set;
    std::vector<std::string> warnings;
    const Status s = ServerContextSet::build(c, {.listener = "https", .workers = workers}, &set, &warnings);
    EXPECT_TRUE(s.ok()) << s.message();
    return set;
  }

  // s_client with "hello" on its stdin; it stays a moment so that what follows the handshake
  // (TLS 1.3's tickets) is read, then ends its input: close_notify, and it exits.
  RunResult s_client(uint16_t port, const std::string& args) {
    return run_command({"sh", "-c", "(printf 'hello\\n'; sleep 0.3) | openssl s_client -connect 127.0.0.1:" +
                                        std::to_string(port) + " " + args + " 2>&1"},
                       std::chrono::seconds(10));
  }

  TempDir dir_;
  StandardPki pki_;
};

TEST_F(OpensslPeers, SClientGetsTheCertificateForItsNameAndAlpn) {
  TlsListenerConfig c;
  c.alpn = {"h2", "http/1.1"};
  TlsServer server(servers(c), {.echo = true});
  const RunResult r = s_client(server.port(), "-servername www.example.com -alpn http/1.1,h2 -CAfile " + pki_.ca_file +
                                                  " -verify_return_error");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("subject=CN = www.example.com"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ALPN protocol: h2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Verification: OK"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Peer signature type: ECDSA"), std::string::npos) << r.output;
  ASSERT_TRUE(server.wait_for(1));
  const DriveResult d = server.results()[0];
  EXPECT_EQ(d.received, "hello\n");
  EXPECT_TRUE(d.eof) << "s_client's close_notify at the end of its input";
  EXPECT_FALSE(d.truncated);
  EXPECT_EQ(d.certificate_file, pki_.www_ec.cert);
  EXPECT_EQ(d.server_name, "www.example.com");
  EXPECT_EQ(d.alpn, "h2");
}

TEST_F(OpensslPeers, SClientChoosesRsaWildcardAndDefault) {
  TlsServer server(servers(), {});
  EXPECT_EQ(s_client(server.port(), "-servername www.example.com -sigalgs RSA-PSS+SHA256:RSA-PSS+SHA384").exit_code, 0);
  EXPECT_EQ(s_client(server.port(), "-servername api.example.org").exit_code, 0);
  EXPECT_EQ(s_client(server.port(), "-noservername").exit_code, 0);
  ASSERT_TRUE(server.wait_for(3));
  const auto r = server.results();
  EXPECT_EQ(r[0].certificate_file, pki_.www_rsa.cert) << "an RSA-only client";
  EXPECT_EQ(r[1].certificate_file, pki_.wildcard.cert);
  EXPECT_EQ(r[2].certificate_file, pki_.www_ec.cert) << "no SNI: the default (ECDSA for this client)";
}

TEST_F(OpensslPeers, Tls11AndGarbageAreRefused) {
  TlsServer server(servers(), {});
  const RunResult old = s_client(server.port(), "-tls1_1 -cipher DEFAULT@SECLEVEL=0");
  EXPECT_NE(old.exit_code, 0) << old.output;
  ASSERT_TRUE(server.wait_for(1));
  EXPECT_FALSE(server.results()[0].handshake);
  EXPECT_EQ(server.results()[0].failure, Failure::kProtocol) << server.results()[0].error_text;
  EXPECT_NE(server.results()[0].error_text.find("unsupported protocol"), std::string::npos)
      << server.results()[0].error_text;

  testing::Fd plain = connect_loopback(server.port());
  ASSERT_TRUE(testing::write_all(plain.get(), "GET / HTTP/1.0\r\n\r\n", 18));
  ASSERT_TRUE(server.wait_for(2));
  EXPECT_EQ(server.results()[1].failure, Failure::kProtocol);
  EXPECT_EQ(testing::read_to_eof(plain.get(), 2000).find("HTTP"), std::string::npos) << "nothing but an alert, and a close";
}

TEST_F(OpensslPeers, ClientCertificatesRequired) {
  TlsListenerConfig c;
  c.client_ca = pki_.ca_file;
  c.client_verify = TlsClientVerify::kRequired;
  TlsServer server(servers(c), {.echo = true});
  s_client(server.port(), "-servername www.example.com");
  s_client(server.port(), "-servername www.example.com -cert " + pki_.other_client.cert + " -key " + pki_.other_client.key);
  const RunResult good =
      s_client(server.port(), "-servername www.example.com -cert " + pki_.client.cert + " -key " + pki_.client.key);
  ASSERT_TRUE(server.wait_for(3));
  const auto r = server.results();
  EXPECT_EQ(r[0].failure, Failure::kNoCertificate) << r[0].error_text;
  EXPECT_EQ(r[1].failure, Failure::kBadCertificate) << r[1].error_text;
  ASSERT_TRUE(r[2].handshake) << r[2].error_text;
  EXPECT_EQ(r[2].peer_cn, "alice");
  EXPECT_EQ(r[2].received, "hello\n");
  EXPECT_EQ(r[2].tlvs.ssl_cn, "alice");
  EXPECT_EQ(r[2].tlvs.ssl_client, kPp2ClientSsl | kPp2ClientCertConn | kPp2ClientCertSess);
  EXPECT_NE(good.output.find("hello"), std::string::npos) << "the echo came back";
}

// s_client's -sess_out / -sess_in: a ticket issued by one worker resumes on the next.
TEST_F(OpensslPeers, SClientResumesOnAnotherWorker) {
  for (const char* version : {"-tls1_3", "-tls1_2"}) {
    TlsServer server(servers({}, 2), {}, /*rotate_workers=*/true);
    const std::string sess = dir_.path() + "/session.pem";
    const RunResult first = s_client(server.port(), std::string(version) + " -servername www.example.com -sess_out " + sess);
    EXPECT_NE(first.output.find("New, TLSv1."), std::string::npos) << first.output;
    const RunResult second = s_client(server.port(), std::string(version) + " -servername www.example.com -sess_in " + sess);
    EXPECT_NE(second.output.find("Reused, TLSv1."), std::string::npos) << second.output;
    ASSERT_TRUE(server.wait_for(2));
    EXPECT_FALSE(server.results()[0].resumed);
    EXPECT_TRUE(server.results()[1].resumed) << version << ": worker 1 resumed worker 0's ticket";
  }
}

// Python's ssl module, half-closing: ringlb's side sends its reply and close_notify; Python reads
// the reply, then EOF, and still writes before its own close_notify, which ringlb reads as EOF.
TEST_F(OpensslPeers, PythonSeesCloseNotifyAsEofAndWritesAfterIt) {
  TlsServer server(servers(), {.send = "pong", .shutdown_after_send = true});
  const std::string script = R"(
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s = ctx.wrap_socket(raw, server_hostname="www.example.com")
got = b""
while True:
    chunk = s.recv(100)
    if not chunk:
        break
    got += chunk
print("got", got.decode(), "then eof", flush=True)
s.sendall(b"after your close_notify")
s.unwrap()
print("unwrapped", flush=True)
)";
  const std::string path = dir_.path() + "/client.py";
  pki::write_text(path, script);
  const RunResult r = run_command({"python3", path, std::to_string(server.port()), pki_.ca_file});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("got pong then eof"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("unwrapped"), std::string::npos) << r.output;
  ASSERT_TRUE(server.wait_for(1));
  const DriveResult d = server.results()[0];
  EXPECT_EQ(d.received, "after your close_notify") << "read after ringlb's own close_notify";
  EXPECT_TRUE(d.eof);
  EXPECT_FALSE(d.truncated) << "Python's close_notify";
}

class Origination : public OpensslPeers {
 protected:
  // openssl s_server, echoing each line reversed, wanting a client certificate.
  void SetUp() override {
    port_ = quiet_port();
    server_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        "openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port_), "-cert", pki_.www_ec.cert, "-key",
        pki_.www_ec.key, "-CAfile", pki_.ca_file, "-Verify", "1", "-alpn", "http/1.1", "-rev", "-quiet"});
    ASSERT_TRUE(eventually([&] { return static_cast<bool>(connect_loopback(port_)); })) << "s_server did not start";
  }
  std::shared_ptr<ClientContext> client(TlsClusterConfig c) {
    std::shared_ptr<const ClientContextSet> set;
    const Status s = ClientContextSet::build(c, "backends", 1, &set);
    EXPECT_TRUE(s.ok()) << s.message();
    return set->worker(0);
  }
  DriveResult connect(const std::shared_ptr<ClientContext>& ctx, uint32_t backend) {
    testing::Fd fd = connect_loopback(port_);
    Stream s(ctx, {.backend = backend, .verify_name = "127.0.0.1"});
    return pki::drive(fd.get(), s, {.send = "hello\n", .expect_bytes = 6, .timeout_ms = 5000});
  }
  uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> server_;
};

TEST_F(Origination, VerifiesPresentsACertificateAndResumesPerBackend) {
  TlsClusterConfig c;
  c.sni = "www.example.com";
  c.ca_file = pki_.ca_file;
  c.cert = pki_.client.cert;
  c.key = pki_.client.key;
  c.alpn = {"h2", "http/1.1"};
  auto ctx = client(c);
  const DriveResult first = connect(ctx, 1);
  ASSERT_TRUE(first.handshake) << first.error_text;
  EXPECT_EQ(first.received, "olleh\n") << "s_server took our certificate (-Verify 1) and echoed";
  EXPECT_EQ(first.alpn, "http/1.1");
  EXPECT_FALSE(first.resumed);
  const DriveResult second = connect(ctx, 1);
  EXPECT_TRUE(second.resumed) << "backend 1's session";
  EXPECT_EQ(second.received, "olleh\n");
  EXPECT_FALSE(connect(ctx, 2).resumed) << "backend 2 has none yet";
}

TEST_F(Origination, WrongCaAndWrongNameAreRefused) {
  TlsClusterConfig wrong_ca;
  wrong_ca.sni = "www.example.com";
  wrong_ca.ca_file = pki_.other_ca_file;
  const DriveResult a = connect(client(wrong_ca), 1);
  EXPECT_FALSE(a.handshake);
  EXPECT_EQ(a.failure, Failure::kBadCertificate);
  // s_server sends its chain up to the root (-CAfile): a root this client does not trust.
  EXPECT_NE(a.error_text.find("certificate verify failed (SSL routines): self-signed certificate in certificate chain"),
            std::string::npos)
      << a.error_text;
  TlsClusterConfig wrong_name;
  wrong_name.sni = "db.internal";
  wrong_name.ca_file = pki_.ca_file;
  const DriveResult b = connect(client(wrong_name), 1);
  EXPECT_EQ(b.failure, Failure::kBadCertificate);
  EXPECT_NE(b.error_text.find("hostname mismatch"), std::string::npos) << b.error_text;
  TlsClusterConfig without_cert;
  without_cert.sni = "www.example.com";
  without_cert.ca_file = pki_.ca_file;
  const DriveResult d = connect(client(without_cert), 1);
  EXPECT_FALSE(d.received == "olleh\n") << "s_server wants a client certificate";
  EXPECT_TRUE(d.error || d.failure != Failure::kNone);
}

}  // namespace
}  // namespace ringlb::tls
