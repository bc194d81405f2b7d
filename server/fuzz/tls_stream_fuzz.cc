// libFuzzer entry point: the TLS server engine (server/tls/stream) with arbitrary bytes in the
// client's place, fed whole or in pieces (the last byte decides), as a listener with client
// certificates (optional), ALPN and tickets would see them. Whatever comes, it never crashes and
// keeps its contract: a read that wants more has taken every byte fed, the output stays under
// its limit, a failed handshake names one of the close reasons, EOF and errors are final.
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "server/tls/server_context.h"
#include "server/tls/stream.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "tls_stream_fuzz: invariant broken: %s\n", what);
    abort();
  }
}

void write_pem(const std::string& path, X509* cert, EVP_PKEY* key) {
  FILE* f = fopen(path.c_str(), "w");
  if (cert != nullptr) PEM_write_X509(f, cert);
  if (key != nullptr) PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  fclose(f);
}

// A listener's contexts, made once: a self-signed P-256 certificate (also its own client CA),
// written to a scratch directory because the contexts read files.
std::shared_ptr<const ringlb::tls::ServerContext> context() {
  static std::shared_ptr<const ringlb::tls::ServerContextSet> set = [] {
    char dir[] = "/tmp/ringlb-tls-fuzz-XXXXXX";
    check(mkdtemp(dir) != nullptr, "a scratch directory");
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3650L * 86400);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("www.example.com"), -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    X509_sign(cert, key, EVP_sha256());
    const std::string d(dir);
    write_pem(d + "/cert.pem", cert, nullptr);
    write_pem(d + "/key.pem", nullptr, key);
    X509_free(cert);
    EVP_PKEY_free(key);
    ringlb::TlsListenerConfig c;
    c.certificates = {{d + "/cert.pem", d + "/key.pem"}};
    c.alpn = {"h2", "http/1.1"};
    c.client_ca = d + "/cert.pem";
    c.client_verify = ringlb::TlsClientVerify::kOptional;
    std::shared_ptr<const ringlb::tls::ServerContextSet> s;
    std::vector<std::string> warnings;
    check(ringlb::tls::ServerContextSet::build(c, {.listener = "fuzz"}, &s, &warnings).ok(), "the contexts build");
    unlink((d + "/cert.pem").c_str());
    unlink((d + "/key.pem").c_str());
    rmdir(dir);
    return s;
  }();
  return set->worker(0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ringlb::tls::Failure;
  using ringlb::tls::Stream;
  Stream s(context());
  check(s.ok(), "a stream");
  const size_t step = size == 0 || (data[size - 1] & 1) ? size : 1 + data[size - 1] % 64;
  char plain[4096];
  bool ended = false, broken = false;
  for (size_t at = 0; at < size && !broken; at += step) {
    const size_t n = std::min(step, size - at);
    s.feed(data + at, n);
    for (int rounds = 0; rounds < 1000; ++rounds) {
      const ssize_t r = s.read(plain, sizeof(plain));
      if (r > 0) {
        check(s.handshake_done(), "plaintext only after the handshake");
        s.write(plain, static_cast<size_t>(r));  // echo: the write path under the same input
        continue;
      }
      if (r == Stream::kWant) check(s.unread_input() == 0, "a read that wants more has taken all input");
      if (r == Stream::kEof) ended = true;
      if (r == Stream::kError) broken = true;
      break;
    }
    check(s.pending_output() <= s.output_limit() + 32 * 1024, "the output stays bounded");
    s.release_input();
    std::string out(s.pending_output(), '\0');
    s.take_output(out.data(), out.size());
  }
  if (ended) check(s.read(plain, sizeof(plain)) == Stream::kEof, "EOF is final");
  if (!s.handshake_done() && broken) {
    const Failure f = s.failure();
    check(f == Failure::kProtocol || f == Failure::kNoCertificate || f == Failure::kBadCertificate,
          "a failed handshake has a close reason");
    check(*ringlb::tls::failure_name(f) != '\0', "the reason has a name");
  }
  if (broken) check(s.read(plain, sizeof(plain)) == Stream::kError, "an error is final");
  // The FIN after it all: the stream ends, one way or the other.
  s.feed_eof();
  const ssize_t last = s.read(plain, sizeof(plain));
  check(last == Stream::kEof || last == Stream::kError || last > 0, "the FIN ends the stream");
  return 0;
}
