// TLS termination end to end: ringlb ends its clients' TLS (a [listener.tls] table) in front of
// plain backends. Real clients: openssl s_client and OpenSSL clients of the test's own
// (tests/support/tls_peer.h); certificates made at test time (tests/tls/test_pki.h).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

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

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const StandardPki& pki() {
  static const StandardPki p = [] {
    const std::string dir = ::testing::TempDir() + "/pki";
    std::filesystem::create_directories(dir);
    return StandardPki(dir);
  }();
  return p;
}

std::string cert_entry(const TlsCertificateFiles& f) {
  return "{ cert = \"" + f.cert + "\", key = \"" + f.key + "\" }";
}

// A config of one terminating listener "https" to cluster "web" (`backend`), with `tls` added
// to its [listener.tls] table (certificates: www RSA, www ECDSA, *.example.org unless given).
std::string tls_config(const std::string& backend, const std::string& tls, const std::string& top = "") {
  std::string certs = "certificates = [";
  const auto list = pki().server_certificates();
  for (size_t i = 0; i < list.size(); ++i) certs += (i ? ", " : "") + cert_entry(list[i]);
  certs += "]\n";
  const bool own_certs = tls.find("certificates") != std::string::npos;
  return top + "buffer-size = 65536\naccess-log = \"" + ::testing::TempDir() + "/access.log\"\n\n" +
         "[cluster.web]\nbackends = [\"" + backend + "\"]\nhealth-interval = \"0s\"\n\n" +
         "[[listener]]\nname = \"https\"\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n\n[listener.tls]\n" +
         (own_certs ? "" : certs) + tls;
}

// openssl s_client against ringlb's port, with `args`; its whole output (stdin sends `input`).
std::string s_client(uint16_t port, const std::string& args, const std::string& input = "") {
  RunResult r = run_command({"sh", "-c", "printf '" + input + "' | timeout 10 openssl s_client -connect 127.0.0.1:" +
                                             std::to_string(port) + " " + args + " 2>&1"});
  return r.output;
}

std::string s_client_held(uint16_t port, const std::string& args) {
  RunResult r = run_command({"sh", "-c", "sleep 0.5 | timeout 10 openssl s_client -connect 127.0.0.1:" +
                                             std::to_string(port) + " " + args + " 2>&1"});
  return r.output;
}

std::string line_after(const std::string& text, const std::string& marker) {
  const size_t at = text.find(marker);
  if (at == std::string::npos) return "";
  const size_t from = at + marker.size();
  return text.substr(from, text.find('\n', from) - from);
}

class TlsTermination : public ::testing::Test {
 protected:
  void start(const std::string& tls, const std::string& top = "") {
    std::filesystem::remove(::testing::TempDir() + "/access.log");
    config_ = write_temp("tls.toml", tls_config(backend_.address(), tls, top));
    ASSERT_TRUE(lb_.start({"--config", config_})) << lb_.output();
  }
  std::string access_log() { return read_file(::testing::TempDir() + "/access.log"); }
  double handshakes(const std::string& result) {
    return lb_.metric("ringlb_tls_handshakes_total", {"result=\"" + result + "\""});
  }

  Backend backend_{name_then_echo_handler('B')};
  std::string config_;
  RinglbProcess lb_;
};

TEST_F(TlsTermination, TheCertificateIsChosenBySniAndForOneNameByTheClientsSignatureAlgorithms) {
  start("");
  const uint16_t port = lb_.port();
  const std::string ec = s_client(port, "-brief -servername www.example.com -sigalgs ECDSA+SHA256");
  EXPECT_EQ(line_after(ec, "Peer certificate: CN = "), "www.example.com") << ec;
  EXPECT_NE(ec.find("Signature type: ECDSA"), std::string::npos) << ec;
  const std::string rsa = s_client(port, "-brief -servername www.example.com -sigalgs rsa_pss_rsae_sha256");
  EXPECT_EQ(line_after(rsa, "Peer certificate: CN = "), "www.example.com") << rsa;
  EXPECT_NE(rsa.find("Signature type: RSA-PSS"), std::string::npos) << rsa;
  const std::string wild = s_client(port, "-brief -servername shop.example.org");
  EXPECT_EQ(line_after(wild, "Peer certificate: CN = "), "*.example.org") << wild;
  // A name no certificate has, and no name at all: the first certificate's name, whose RSA and
  // ECDSA certificates the client's algorithms choose between as for a match.
  for (const char* name : {"-servername unknown.example.net", "-noservername"}) {
    const std::string rsa_only = s_client(port, std::string("-brief -sigalgs rsa_pss_rsae_sha256 ") + name);
    EXPECT_EQ(line_after(rsa_only, "Peer certificate: CN = "), "www.example.com") << rsa_only;
    EXPECT_NE(rsa_only.find("Signature type: RSA-PSS"), std::string::npos) << rsa_only;
    const std::string any = s_client(port, std::string("-brief ") + name);
    EXPECT_EQ(line_after(any, "Peer certificate: CN = "), "www.example.com") << any;
  }
  EXPECT_GE(handshakes("ok"), 5);
  // The status API (and so the page) says the listener ends TLS.
  const std::string status = http_get(lb_.metrics_port(), "/api/v1/status");
  EXPECT_NE(status.find("\"tls\":true"), std::string::npos) << status;
  const std::string expiry = lb_.scrape();
  EXPECT_NE(expiry.find("ringlb_tls_certificate_expiry_timestamp_seconds{listener=\"https\",name=\"*.example.org\"}"),
            std::string::npos) << expiry;
}

TEST_F(TlsTermination, AlpnIsTheListenersPreferenceAndTheAccessLogNamesTheSession) {
  start("alpn = [\"h2\", \"http/1.1\"]\n");
  CtxPtr both = make_tls_context({.alpn = {"http/1.1", "h2"}, .ca_file = pki().ca_file}, false);
  bool ok = false;
  TlsConnection c = tls_connect(both.get(), lb_.port(), "www.example.com", &ok);
  ASSERT_TRUE(ok) << c.error();
  EXPECT_EQ(c.alpn(), "h2");
  EXPECT_EQ(c.read(1), "B") << "the plain backend answers through the TLS session";
  ASSERT_TRUE(c.write_all("ping"));
  EXPECT_EQ(c.read(4), "ping");
  c.shutdown_write();
  CtxPtr old = make_tls_context({.alpn = {"http/1.1"}, .ca_file = pki().ca_file}, false);
  TlsConnection d = tls_connect(old.get(), lb_.port(), "www.example.com", &ok);
  ASSERT_TRUE(ok) << d.error();
  EXPECT_EQ(d.alpn(), "http/1.1");
  c = TlsConnection();
  d = TlsConnection();
  ASSERT_TRUE(eventually([&] { return access_log().find("alpn=http/1.1") != std::string::npos; })) << access_log();
  const std::string log = access_log();
  EXPECT_NE(log.find("tls_version=TLSv1.3"), std::string::npos) << log;
  EXPECT_NE(log.find("tls_cipher=TLS_"), std::string::npos) << log;
  EXPECT_NE(log.find("alpn=h2"), std::string::npos) << log;
}

TEST_F(TlsTermination, TlsOneOneIsRefusedAndMinVersionOneThreeRefusesOneTwo) {
  start("");
  const std::string old = s_client(lb_.port(), "-brief -tls1_1 -cipher DEFAULT@SECLEVEL=0");
  EXPECT_EQ(old.find("Protocol version: TLSv1.1"), std::string::npos) << old;
  EXPECT_TRUE(eventually([&] { return handshakes("tls_protocol") >= 1; })) << lb_.scrape();
  const std::string twelve = s_client(lb_.port(), "-brief -tls1_2");
  EXPECT_NE(twelve.find("Protocol version: TLSv1.2"), std::string::npos) << "1.2 is the default minimum\n" << twelve;
  RinglbProcess strict;
  ASSERT_TRUE(strict.start({"--config", write_temp("strict.toml", tls_config(backend_.address(), "min-version = \"1.3\"\n"))}))
      << strict.output();
  const std::string refused = s_client(strict.port(), "-brief -tls1_2");
  EXPECT_EQ(refused.find("Protocol version: TLSv1.2"), std::string::npos) << refused;
  EXPECT_TRUE(eventually([&] {
    return strict.metric("ringlb_tls_handshakes_total", {"result=\"tls_protocol\""}) == 1;
  })) << strict.scrape();
  const std::string thirteen = s_client(strict.port(), "-brief -tls1_3");
  EXPECT_NE(thirteen.find("Protocol version: TLSv1.3"), std::string::npos) << thirteen;
  EXPECT_TRUE(eventually([&] { return backend_.accepted() == 2; })) << "only the TLS 1.2 and 1.3 clients got through";
}

TEST_F(TlsTermination, ClientCertificatesRequiredNoneAGoodOneAndAnotherCAs) {
  start("client-ca = \"" + pki().ca_file + "\"\nclient-verify = \"required\"\n");
  auto attempt = [&](const TlsCertificateFiles* cert) {
    TlsOptions o{.ca_file = pki().ca_file};
    if (cert) o.cert = cert->cert, o.key = cert->key;
    CtxPtr ctx = make_tls_context(o, false);
    bool ok = false;
    TlsConnection c = tls_connect(ctx.get(), lb_.port(), "www.example.com", &ok);
    // TLS 1.3: the client's handshake ends before the server has checked its certificate; a
    // refusal shows as the alert on the first read.
    return ok ? c.read(1, 5000) : std::string();
  };
  EXPECT_EQ(attempt(nullptr), "");
  EXPECT_TRUE(eventually([&] { return handshakes("tls_no_certificate") == 1; })) << lb_.scrape();
  EXPECT_EQ(attempt(&pki().other_client), "");
  EXPECT_TRUE(eventually([&] { return handshakes("tls_bad_certificate") == 1; })) << lb_.scrape();
  EXPECT_EQ(attempt(&pki().client), "B");
  EXPECT_EQ(backend_.accepted(), 1) << "refused clients never reach a backend";
  EXPECT_TRUE(eventually([&] { return access_log().find("client_cn=alice") != std::string::npos; })) << access_log();
  EXPECT_EQ(lb_.closed_total("tls_no_certificate"), 1);
  EXPECT_EQ(lb_.closed_total("tls_bad_certificate"), 1);
}

TEST_F(TlsTermination, TicketsResumeOnEveryWorker) {
  start("", "workers = 2\n");
  CtxPtr ctx = make_tls_context({.ca_file = pki().ca_file}, false);
  bool ok = false;
  SSL_SESSION* session = nullptr;
  {
    TlsConnection first = tls_connect(ctx.get(), lb_.port(), "www.example.com", &ok);
    ASSERT_TRUE(ok) << first.error();
    EXPECT_FALSE(first.resumed());
    ASSERT_EQ(first.read(1), "B");  // the tickets came before it
    session = SSL_get1_session(first.ssl());
    first.shutdown_write();
  }
  for (int i = 0; i < 8; ++i) {
    TlsConnection c = tls_connect(ctx.get(), lb_.port(), "www.example.com", &ok, session);
    ASSERT_TRUE(ok) << c.error();
    EXPECT_TRUE(c.resumed()) << "connection " << i;
    EXPECT_EQ(c.read(1), "B");
    // As a browser does: the next connection resumes with the newest ticket.
    SSL_SESSION_free(session);
    session = SSL_get1_session(c.ssl());
    c.shutdown_write();
  }
  SSL_SESSION_free(session);
  EXPECT_TRUE(eventually([&] { return lb_.metric("ringlb_tls_resumed_total") == 8; })) << lb_.scrape();
  // The access log says which worker served each: resumed on both, so both know the ticket keys.
  ASSERT_TRUE(eventually([&] {
    const std::string log = access_log();
    return log.find("worker=0") != std::string::npos && log.find("worker=1") != std::string::npos;
  })) << access_log();
  // And openssl s_client's own session file, as an operator would try it.
  const std::string file = ::testing::TempDir() + "/session.pem";
  // (Its stdin stays open half a second, for the tickets that follow the handshake to arrive.)
  const std::string out = s_client_held(lb_.port(), "-servername www.example.com -sess_out " + file);
  ASSERT_NE(out.find("New, TLSv1.3"), std::string::npos) << out;
  for (int i = 0; i < 2; ++i) {
    const std::string again = s_client_held(lb_.port(), "-servername www.example.com -sess_in " + file);
    EXPECT_NE(again.find("Reused, TLSv1.3"), std::string::npos) << again;
  }
}

TEST_F(TlsTermination, GarbageATruncatedHelloAndASilentClientAreClosedWithTheirReasons) {
  start("handshake-timeout = \"300ms\"\n");
  {
    Fd plain = connect_loopback(lb_.port());
    const std::string http = "GET / HTTP/1.0\r\n\r\n";
    write_all(plain.get(), http.data(), http.size());
    EXPECT_TRUE(readable_within(plain.get(), 5000));
  }
  EXPECT_TRUE(eventually([&] { return lb_.closed_total("tls_protocol") == 1; })) << lb_.scrape();
  {
    // The start of a ClientHello, then the client goes.
    Fd cut = connect_loopback(lb_.port());
    const std::string head("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
    write_all(cut.get(), head.data(), head.size());
    shutdown(cut.get(), SHUT_WR);
    EXPECT_TRUE(readable_within(cut.get(), 5000));
  }
  EXPECT_TRUE(eventually([&] { return lb_.closed_total("tls_protocol") == 2; })) << lb_.scrape();
  const auto opened = std::chrono::steady_clock::now();
  Fd silent = connect_loopback(lb_.port());
  EXPECT_TRUE(readable_within(silent.get(), 5000));
  const auto waited = std::chrono::steady_clock::now() - opened;
  EXPECT_GE(waited, 250ms);
  EXPECT_TRUE(eventually([&] { return lb_.closed_total("tls_handshake_timeout") == 1; })) << lb_.scrape();
  EXPECT_EQ(handshakes("tls_handshake_timeout"), 1);
  EXPECT_EQ(backend_.accepted(), 0) << "no failed handshake reaches a backend";
}

TEST_F(TlsTermination, ASlowReaderBoundsWhatRinglbHolds) {
  std::atomic<uint64_t> written{0};
  Backend hose(firehose_handler(&written));
  std::filesystem::remove(::testing::TempDir() + "/access.log");
  ASSERT_TRUE(lb_.start({"--config", write_temp("slow.toml", tls_config(hose.address(), ""))})) << lb_.output();
  const long rss_before = rss_kib(lb_.pid());
  CtxPtr ctx = make_tls_context({.ca_file = pki().ca_file}, false);
  bool ok = false;
  TlsConnection c = tls_connect(ctx.get(), lb_.port(), "www.example.com", &ok);
  ASSERT_TRUE(ok) << c.error();
  // The client reads nothing: the backend gets to write only what the sockets and ringlb's
  // bounded buffers hold, however long it tries, and ringlb's memory stays flat meanwhile.
  std::this_thread::sleep_for(1500ms);
  const long rss_stalled = rss_kib(lb_.pid());
  const uint64_t stalled = written.load();
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(written.load(), stalled) << "the backend is held back";
  EXPECT_LT(stalled, 48u << 20) << "socket buffers both sides plus ringlb's buffer and one TLS chunk";
  EXPECT_LT(rss_kib(lb_.pid()) - rss_stalled, 512) << "flat while the backend keeps trying";
  // Everything a TLS connection costs, its backlog included (generous for sanitizer builds).
  EXPECT_LT(rss_kib(lb_.pid()) - rss_before, 16 * 1024) << "ringlb's memory did not grow with the backlog";
  // Reading resumes the flow.
  const std::string got = c.read(1 << 20, 10000);
  ASSERT_EQ(got.size(), 1u << 20);
  EXPECT_EQ(got, std::string(1 << 20, 'x'));
  std::this_thread::sleep_for(200ms);
  EXPECT_GT(written.load(), stalled) << "and the backend writes again";
}

TEST_F(TlsTermination, ACertificateReplacedBySighupServesNewClientsWhileAnOlderConnectionGoesOn) {
  const std::string dir = ::testing::TempDir() + "/live";
  std::filesystem::create_directories(dir);
  const TlsCertificateFiles live{dir + "/live.crt", dir + "/live.key"};
  std::filesystem::copy_file(pki().www_ec.cert, live.cert, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(pki().www_ec.key, live.key, std::filesystem::copy_options::overwrite_existing);
  start("certificates = [" + cert_entry(live) + "]\n");
  CtxPtr ctx = make_tls_context({}, false);
  bool ok = false;
  TlsConnection old = tls_connect(ctx.get(), lb_.port(), "", &ok);
  ASSERT_TRUE(ok) << old.error();
  EXPECT_EQ(old.peer_cn(), "www.example.com");
  ASSERT_EQ(old.read(1), "B");

  std::filesystem::copy_file(pki().wildcard.cert, live.cert, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(pki().wildcard.key, live.key, std::filesystem::copy_options::overwrite_existing);
  kill(lb_.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return lb_.output().find("ringlb: info: reloaded:") != std::string::npos; }, 5s))
      << lb_.output();
  TlsConnection fresh = tls_connect(ctx.get(), lb_.port(), "", &ok);
  ASSERT_TRUE(ok) << fresh.error();
  EXPECT_EQ(fresh.peer_cn(), "*.example.org");
  ASSERT_TRUE(old.write_all("still here"));
  EXPECT_EQ(old.read(10), "still here") << "the older connection goes on with its session";

  // A broken file: the reload is refused with the file named, and the last good set stays.
  std::ofstream(live.key) << "not a key\n";
  kill(lb_.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return lb_.output().find(live.key + ":") != std::string::npos; }, 5s)) << lb_.output();
  TlsConnection after = tls_connect(ctx.get(), lb_.port(), "", &ok);
  ASSERT_TRUE(ok) << after.error();
  EXPECT_EQ(after.peer_cn(), "*.example.org");
}

}  // namespace
}  // namespace ringlb::testing
