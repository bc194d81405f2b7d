// The PROXY v2 TLVs a real HAProxy (Debian's 2.6, `send-proxy-v2-ssl-cn` with every TLS option)
// sends for a TLS client: ringlb's parser reads them, ringlb's writer gives the same bytes for
// what it read, and ringlb's own TLS engine, terminating the same client, describes it the same.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include "server/protocol/proxy_protocol.h"
#include "server/tls/server_context.h"
#include "tests/support/net.h"
#include "tests/support/process.h"
#include "tests/tls/socket_driver.h"
#include "tests/tls/test_pki.h"

namespace ringlb::tls {
namespace {

using ringlb::testing::ChildProcess;
using ringlb::testing::connect_loopback;
using ringlb::testing::eventually;
using ringlb::testing::Fd;
using ringlb::testing::listen_loopback;
using ringlb::testing::quiet_port;
using ringlb::testing::run_command;
using ringlb::testing::TempDir;

// The first bytes a backend gets: the whole PROXY header (and maybe data after it).
std::string read_header(int listener, ParsedProxyHeader* parsed, ProxyTlvs* tlvs) {
  pollfd p{listener, POLLIN, 0};
  if (poll(&p, 1, 10000) <= 0) return "";
  Fd conn(accept(listener, nullptr, nullptr));
  std::string bytes;
  char buf[8192];
  while (parse_proxy_header(bytes.data(), bytes.size(), parsed, tlvs) == ParseResult::kIncomplete) {
    pollfd q{conn.get(), POLLIN, 0};
    if (poll(&q, 1, 5000) <= 0) return "";
    const ssize_t n = recv(conn.get(), buf, sizeof(buf), 0);
    if (n <= 0) return "";
    bytes.append(buf, static_cast<size_t>(n));
  }
  return bytes.substr(0, parsed->length);
}

TEST(HaproxyTlvs, RinglbReadsAndWritesWhatHaproxySends) {
  TempDir dir;
  const pki::StandardPki pki(dir.path());
  // HAProxy's crt: the certificate and its key in one file.
  std::string combined, key;
  std::string why;
  ASSERT_TRUE(read_file(pki.www_ec.cert, &combined, &why));
  ASSERT_TRUE(read_file(pki.www_ec.key, &key, &why));
  pki::write_text(dir.path() + "/www-ec.pem", combined + key);
  uint16_t backend_port = 0;
  Fd backend = listen_loopback(&backend_port);
  const uint16_t port = quiet_port();
  pki::write_text(dir.path() + "/haproxy.cfg",
                  "global\n    nbthread 1\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 10s\n"
                  "    timeout server 10s\nfrontend fe\n    bind 127.0.0.1:" + std::to_string(port) + " ssl crt " +
                      dir.path() + "/www-ec.pem ca-file " + pki.ca_file +
                      " verify optional alpn h2,http/1.1\n    default_backend be\nbackend be\n    server s 127.0.0.1:" +
                      std::to_string(backend_port) +
                      " send-proxy-v2-ssl-cn proxy-v2-options ssl,cert-cn,ssl-cipher,cert-sig,cert-key,authority\n");
  ChildProcess haproxy({"haproxy", "-f", dir.path() + "/haproxy.cfg", "-db"});
  ASSERT_TRUE(eventually([&] { return static_cast<bool>(connect_loopback(port)); })) << "haproxy did not start";
  const std::string client = "(printf 'hello\\n'; sleep 0.5) | openssl s_client -servername www.example.com -alpn h2 -cert " +
                             pki.client.cert + " -key " + pki.client.key + " -connect 127.0.0.1:";
  const auto s_client = run_command({"sh", "-c", client + std::to_string(port) + " 2>&1"});
  ParsedProxyHeader parsed;
  ProxyTlvs from_haproxy;
  const std::string header = read_header(backend.get(), &parsed, &from_haproxy);
  ASSERT_FALSE(header.empty()) << "no PROXY header from HAProxy\n" << s_client.output;

  EXPECT_EQ(from_haproxy.alpn, "h2");
  EXPECT_EQ(from_haproxy.authority, "www.example.com");
  EXPECT_TRUE(from_haproxy.ssl);
  EXPECT_EQ(from_haproxy.ssl_client, kPp2ClientSsl | kPp2ClientCertConn | kPp2ClientCertSess);
  EXPECT_EQ(from_haproxy.ssl_verify, 0u);
  EXPECT_EQ(from_haproxy.ssl_version, "TLSv1.3");
  EXPECT_EQ(from_haproxy.ssl_cn, "alice");
  EXPECT_EQ(from_haproxy.ssl_cipher, "TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(from_haproxy.ssl_sig_alg, "RSA-SHA256");
  EXPECT_EQ(from_haproxy.ssl_key_alg, "EC256");

  // ringlb's writer, given what it read, writes HAProxy's very bytes (same TLVs, same order).
  const size_t addresses = parsed.src.ss_family == AF_INET ? 12 : 36;
  const std::string haproxy_tlvs = header.substr(16 + addresses);
  std::string ours(proxy_tlvs_size(from_haproxy), '\0');
  ASSERT_EQ(encode_proxy_tlvs(from_haproxy, reinterpret_cast<uint8_t*>(ours.data()), ours.size()), ours.size());
  EXPECT_EQ(ours, haproxy_tlvs);

  // ringlb terminating the same client the same way describes it the same way.
  TlsListenerConfig c;
  c.certificates = {pki.www_ec};
  c.alpn = {"h2", "http/1.1"};
  c.client_ca = pki.ca_file;
  c.client_verify = TlsClientVerify::kOptional;
  std::shared_ptr<const ServerContextSet> set;
  std::vector<std::string> warnings;
  ASSERT_TRUE(ServerContextSet::build(c, {.listener = "https"}, &set, &warnings).ok());
  pki::TlsServer ringlb(set, {});
  run_command({"sh", "-c", client + std::to_string(ringlb.port()) + " 2>&1"});
  ASSERT_TRUE(ringlb.wait_for(1));
  ProxyTlvs from_ringlb = ringlb.results()[0].tlvs;
  from_ringlb.ssl_client_cert.clear();  // HAProxy 2.6 has no PP2_SUBTYPE_SSL_CLIENT_CERT
  EXPECT_EQ(from_ringlb, from_haproxy);
}

}  // namespace
}  // namespace ringlb::tls
