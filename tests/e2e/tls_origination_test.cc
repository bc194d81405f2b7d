// TLS origination end to end: ringlb connects to a cluster's backends with TLS ([cluster.X.tls]),
// verifying them, and passes its terminated clients' identity on in PROXY v2 TLVs. The backends
// are OpenSSL servers of the test's own (tests/support/tls_peer.h); the biggest transfer goes
// through termination and origination at once.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "server/protocol/proxy_protocol.h"
#include "tests/support/backends.h"
#include "tests/support/net.h"
#include "tests/support/process.h"
#include "tests/support/tls_peer.h"
#include "tests/tls/test_pki.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;
using tls::pki::StandardPki;

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

const StandardPki& pki() {
  static const StandardPki p = [] {
    const std::string dir = ::testing::TempDir() + "/pki";
    std::filesystem::create_directories(dir);
    return StandardPki(dir);
  }();
  return p;
}

std::string quoted_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", \"" : "\"") + items[i] + "\"";
  return out + "]";
}

// A plain listener "in" to cluster "up" with `backends`, whose [cluster.up.tls] table is `tls`.
std::string origin_config(const std::vector<std::string>& backends, const std::string& tls,
                          const std::string& listener_tls = "") {
  std::string text = "buffer-size = 65536\n\n[cluster.up]\nbackends = " +
                     quoted_list(backends) + "\nhealth-interval = \"0s\"\n\n[cluster.up.tls]\n" + tls +
                     "\n[[listener]]\nname = \"in\"\naddress = \"127.0.0.1:0\"\ncluster = \"up\"\n";
  if (!listener_tls.empty()) text += "\n[listener.tls]\n" + listener_tls;
  return text;
}

std::string terminating(const std::string& more = "") {
  return "certificates = [{ cert = \"" + pki().www_ec.cert + "\", key = \"" + pki().www_ec.key + "\" }]\n" + more;
}

// The backend's name, read by a plain client through ringlb; "" when ringlb closed it.
std::string name_through(uint16_t port) {
  Fd fd = connect_loopback(port);
  set_recv_timeout(fd.get(), 5000);
  char c[2] = {0};
  if (!read_exact(fd.get(), c, 2)) return "";
  return std::string(c, 1);
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(TlsOrigination, AGigabyteEachWayThroughTerminationAndOriginationWithAHalfClose) {
  const char* env = std::getenv("RINGLB_TLS_TEST_BYTES");
  const uint64_t bytes = env ? std::strtoull(env, nullptr, 10) : (1ULL << 30);
  std::mutex mu;
  std::string backend_got_sha, backend_sent_sha, backend_alpn, backend_error;
  uint64_t backend_got = 0;
  // The backend reads to the client's close_notify, then answers as much and closes in turn.
  TlsBackend backend({.alpn = {"http/1.1"}, .cert = pki().www_ec.cert, .key = pki().www_ec.key},
                     [&](TlsConnection& c) {
                       uint64_t got = 0;
                       std::string got_sha, sent_sha;
                       const bool read = c.read_to_close(&got, &got_sha);
                       const bool wrote = read && c.write_pattern(bytes, &sent_sha) && c.shutdown_write();
                       std::lock_guard<std::mutex> lock(mu);
                       backend_got = got;
                       backend_got_sha = got_sha;
                       backend_sent_sha = sent_sha;
                       backend_alpn = c.alpn();
                       if (!read || !wrote) backend_error = c.error();
                     });
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_temp("big.toml", origin_config({backend.address()},
                                                                          "sni = \"www.example.com\"\nca-file = \"" +
                                                                              pki().ca_file + "\"\nalpn = [\"http/1.1\"]\n",
                                                                          terminating()))}))
      << lb.output();
  CtxPtr ctx = make_tls_context({.ca_file = pki().ca_file}, false);
  bool ok = false;
  TlsConnection c = tls_connect(ctx.get(), lb.port(), "www.example.com", &ok);
  ASSERT_TRUE(ok) << c.error();
  std::string sent_sha, got_sha;
  ASSERT_TRUE(c.write_pattern(bytes, &sent_sha)) << c.error();
  ASSERT_TRUE(c.shutdown_write()) << c.error();  // close_notify: a FIN to ringlb's backend side
  uint64_t got = 0;
  ASSERT_TRUE(c.read_to_close(&got, &got_sha)) << c.error() << "\n" << lb.output();
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(backend_error, "");
  EXPECT_EQ(backend_got, bytes);
  EXPECT_EQ(backend_got_sha, sent_sha) << "client to backend, intact and in order";
  EXPECT_EQ(got, bytes);
  EXPECT_EQ(got_sha, backend_sent_sha) << "backend to client, after the client's half-close";
  EXPECT_EQ(backend_alpn, "http/1.1");
  EXPECT_EQ(lb.closed_total("error"), 0);

}

TEST(TlsOrigination, AWrongCaOrNameIsAFailedConnectSoTheNextBackendServesAndItIsLoggedOnce) {
  TlsBackend stranger({.cert = pki().other_client.cert, .key = pki().other_client.key}, tls_name_then_echo("S"));
  TlsBackend good({.cert = pki().www_ec.cert, .key = pki().www_ec.key}, tls_name_then_echo("G"));
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_temp("verify.toml",
                                               origin_config({stranger.address(), good.address()},
                                                             "sni = \"www.example.com\"\nca-file = \"" +
                                                                 pki().ca_file + "\"\n"))}))
      << lb.output();
  for (int i = 0; i < 6; ++i) EXPECT_EQ(name_through(lb.port()), "G") << "connection " << i;
  EXPECT_GE(stranger.failed_handshakes(), 3) << "round robin tried it, and it failed verification";
  EXPECT_EQ(stranger.handshakes(), 0);
  EXPECT_GE(lb.metric("ringlb_tls_origination_failures_total", {"cluster=\"up\""}), 3) << lb.scrape();
  EXPECT_EQ(count_of(lb.output(), "tls: backend up/" + stranger.address()), 1u)
      << "logged once per backend and state\n" << lb.output();
  // The status API (and so the page): a plain listener, a cluster reached with TLS.
  const std::string status = http_get(lb.metrics_port(), "/api/v1/status");
  EXPECT_EQ(count_of(status, "\"tls\":true"), 1u) << status;
  EXPECT_EQ(count_of(status, "\"tls\":false"), 1u) << status;

  // The right CA but another name: refused as well; with no other backend the client goes.
  RinglbProcess named;
  ASSERT_TRUE(named.start({"--config", write_temp("name.toml", origin_config({good.address()},
                                                                              "sni = \"wrong.example.net\"\nca-file = \"" +
                                                                                  pki().ca_file + "\"\n"))}))
      << named.output();
  EXPECT_EQ(name_through(named.port()), "");
  EXPECT_GE(named.metric("ringlb_tls_origination_failures_total", {"cluster=\"up\""}), 1);
  EXPECT_NE(named.output().find("tls: backend up/" + good.address()), std::string::npos) << named.output();
}

TEST(TlsOrigination, AClientCertificateGoesToTheBackendAndSessionsResumePerBackend) {
  std::mutex mu;
  std::vector<std::string> peers;
  std::vector<bool> resumed;
  TlsBackend backend({.ca_file = pki().ca_file, .cert = pki().www_ec.cert, .key = pki().www_ec.key,
                      .require_client_cert = true},
                     [&](TlsConnection& c) {
                       {
                         std::lock_guard<std::mutex> lock(mu);
                         peers.push_back(c.peer_cn());
                         resumed.push_back(c.resumed());
                       }
                       c.write_all("M\n");
                       c.read_some(5000);
                       c.shutdown_write();
                     });
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_temp("mtls.toml", origin_config({backend.address()},
                                                                           "sni = \"www.example.com\"\nca-file = \"" +
                                                                               pki().ca_file + "\"\ncert = \"" +
                                                                               pki().client.cert + "\"\nkey = \"" +
                                                                               pki().client.key + "\"\n"))}))
      << lb.output();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(name_through(lb.port()), "M") << i << " " << backend.failed_handshakes() << "\n" << lb.output();
  }
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(peers.size(), 4u);
  for (const std::string& p : peers) EXPECT_EQ(p, "alice");
  EXPECT_FALSE(resumed[0]);
  EXPECT_TRUE(resumed[3]) << "the worker kept the backend's session";
}

std::string der_of(const std::string& pem_file) {
  FILE* f = fopen(pem_file.c_str(), "r");
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  fclose(f);
  unsigned char* der = nullptr;
  const int n = i2d_X509(cert, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  X509_free(cert);
  return out;
}

TEST(TlsOrigination, ProxyV2CarriesTheTerminatedClientsIdentityAndCertificate) {
  std::mutex mu;
  std::string header;
  Backend plain([&](int fd, const std::atomic<bool>&) {
    // The header, then the client's "hello": two sends, one or two recvs.
    std::string got;
    set_recv_timeout(fd, 5000);
    char buf[kMaxAcceptedProxyHeader];
    for (;;) {
      ParsedProxyHeader h;
      if (parse_proxy_header(got.data(), got.size(), &h) == ParseResult::kComplete && got.size() >= h.length + 5) break;
      const ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    std::lock_guard<std::mutex> lock(mu);
    header = got;
    send(fd, "P", 1, MSG_NOSIGNAL);
  });
  // Origination is off here: the cluster is plain, with send-proxy v2 and the certificate asked for.
  const std::string config = "buffer-size = 65536\n\n[cluster.up]\nbackends = [\"" + plain.address() +
                             ",send-proxy-v2\"]\nhealth-interval = \"0s\"\nsend-proxy-client-certificate = true\n\n"
                             "[[listener]]\nname = \"in\"\naddress = \"127.0.0.1:0\"\ncluster = \"up\"\n\n"
                             "[listener.tls]\n" +
                             terminating("alpn = [\"h2\"]\nclient-ca = \"" + pki().ca_file +
                                         "\"\nclient-verify = \"optional\"\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", write_temp("tlvs.toml", config)})) << lb.output();
  CtxPtr ctx = make_tls_context({.alpn = {"h2"}, .ca_file = pki().ca_file, .cert = pki().client.cert,
                                 .key = pki().client.key},
                                false);
  bool ok = false;
  TlsConnection c = tls_connect(ctx.get(), lb.port(), "www.example.com", &ok);
  ASSERT_TRUE(ok) << c.error();
  ASSERT_TRUE(c.write_all("hello"));
  EXPECT_EQ(c.read(1), "P");
  std::lock_guard<std::mutex> lock(mu);
  ParsedProxyHeader parsed;
  ProxyTlvs tlvs;
  ASSERT_EQ(parse_proxy_header(header.data(), header.size(), &parsed, &tlvs), ParseResult::kComplete);
  EXPECT_TRUE(parsed.has_addresses);
  EXPECT_EQ(header.substr(parsed.length), "hello") << "the client's plaintext follows the header";
  EXPECT_EQ(tlvs.alpn, "h2");
  EXPECT_EQ(tlvs.authority, "www.example.com");
  EXPECT_TRUE(tlvs.ssl);
  EXPECT_EQ(tlvs.ssl_client & (kPp2ClientSsl | kPp2ClientCertConn), kPp2ClientSsl | kPp2ClientCertConn);
  EXPECT_EQ(tlvs.ssl_verify, 0u);
  EXPECT_EQ(tlvs.ssl_version, "TLSv1.3");
  EXPECT_EQ(tlvs.ssl_cn, "alice");
  EXPECT_EQ(tlvs.ssl_cipher.rfind("TLS_", 0), 0u) << tlvs.ssl_cipher;
  EXPECT_EQ(tlvs.ssl_client_cert, der_of(pki().client.cert));
}

}  // namespace
}  // namespace ringlb::testing
