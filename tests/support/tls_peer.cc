#include "tests/support/tls_peer.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>

namespace ringlb::testing {
namespace {

char pattern(uint64_t i) { return static_cast<char>('a' + (i * 7 + i / 251) % 26); }

std::string openssl_error() {
  char text[256] = {0};
  const unsigned long e = ERR_get_error();
  if (e == 0) return "no OpenSSL error";
  ERR_error_string_n(e, text, sizeof(text));
  ERR_clear_error();
  return text;
}

std::string hex(const unsigned char* d, unsigned n) {
  std::string out;
  char b[3];
  for (unsigned i = 0; i < n; ++i) {
    snprintf(b, sizeof(b), "%02x", d[i]);
    out += b;
  }
  return out;
}

std::string alpn_wire(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const std::string& p : protocols) wire += static_cast<char>(p.size()) + p;
  return wire;
}

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
                void* arg) {
  const std::string& ours = *static_cast<std::string*>(arg);
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, reinterpret_cast<const unsigned char*>(ours.data()),
                            static_cast<unsigned>(ours.size()), in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

bool wait_readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) > 0;
}

}  // namespace

std::string sha256_hex_of(const std::string& data) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_Digest(data.data(), data.size(), d, &n, EVP_sha256(), nullptr);
  return hex(d, n);
}

CtxPtr make_tls_context(const TlsOptions& o, bool server) {
  CtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!o.cert.empty()) {
    SSL_CTX_use_certificate_chain_file(ctx.get(), o.cert.c_str());
    SSL_CTX_use_PrivateKey_file(ctx.get(), o.key.c_str(), SSL_FILETYPE_PEM);
  }
  if (!o.ca_file.empty()) {
    SSL_CTX_load_verify_locations(ctx.get(), o.ca_file.c_str(), nullptr);
    if (!server) SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  if (server && o.require_client_cert) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  if (!o.alpn.empty()) {
    // Kept for the life of the test process: a server's callback reads it on every handshake.
    static std::mutex mu;
    static std::deque<std::string> wires;
    std::string* wire;
    {
      std::lock_guard<std::mutex> lock(mu);
      wire = &wires.emplace_back(alpn_wire(o.alpn));
    }
    if (server) {
      SSL_CTX_set_alpn_select_cb(ctx.get(), select_alpn, wire);
    } else {
      SSL_CTX_set_alpn_protos(ctx.get(), reinterpret_cast<const unsigned char*>(wire->data()),
                              static_cast<unsigned>(wire->size()));
    }
  }
  SSL_CTX_set_session_cache_mode(ctx.get(), server ? SSL_SESS_CACHE_SERVER : SSL_SESS_CACHE_CLIENT);
  // A server that verifies clients resumes only sessions of its own context (else an internal error).
  static const unsigned char kContext[] = "ringlb-test";
  if (server) SSL_CTX_set_session_id_context(ctx.get(), kContext, sizeof(kContext) - 1);
  return ctx;
}

TlsConnection::TlsConnection(SSL_CTX* ctx, Fd fd, bool server) : ssl_(SSL_new(ctx)), fd_(std::move(fd)) {
  SSL_set_fd(ssl_.get(), fd_.get());
  if (server) {
    SSL_set_accept_state(ssl_.get());
  } else {
    SSL_set_connect_state(ssl_.get());
  }
}

TlsConnection::~TlsConnection() {
  // Freed without a shutdown, OpenSSL marks the session not resumable: tests that drop a
  // connection mid-stream still resume it.
  if (ssl_) SSL_set_shutdown(ssl_.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
}

bool TlsConnection::handshake() {
  set_recv_timeout(fd_.get(), 10000);
  if (SSL_do_handshake(ssl_.get()) == 1) return true;
  error_ = openssl_error();
  return false;
}

std::string TlsConnection::alpn() const {
  const unsigned char* p = nullptr;
  unsigned n = 0;
  SSL_get0_alpn_selected(ssl_.get(), &p, &n);
  return std::string(reinterpret_cast<const char*>(p), n);
}

std::string TlsConnection::version() const { return SSL_get_version(ssl_.get()); }

std::string TlsConnection::peer_cn() const {
  X509* cert = SSL_get1_peer_certificate(ssl_.get());
  if (cert == nullptr) return "";
  char cn[256] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
  X509_free(cert);
  return cn;
}

bool TlsConnection::resumed() const { return SSL_session_reused(ssl_.get()) == 1; }

bool TlsConnection::write_all(const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    size_t n = 0;
    if (SSL_write_ex(ssl_.get(), data.data() + off, data.size() - off, &n) != 1) {
      error_ = "write: " + openssl_error();
      return false;
    }
    off += n;
  }
  return true;
}

bool TlsConnection::write_pattern(uint64_t bytes, std::string* sha) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), nullptr);
  std::string chunk;
  bool ok = true;
  for (uint64_t at = 0; at < bytes && ok;) {
    const uint64_t n = std::min<uint64_t>(bytes - at, 256 * 1024);
    chunk.resize(n);
    for (uint64_t i = 0; i < n; ++i) chunk[i] = pattern(at + i);
    EVP_DigestUpdate(md, chunk.data(), n);
    ok = write_all(chunk);
    at += n;
  }
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(md, d, &len);
  EVP_MD_CTX_free(md);
  *sha = hex(d, len);
  return ok;
}

bool TlsConnection::shutdown_write() {
  // Once: that sends our close_notify and returns 0 (theirs has not come). Not twice: the second
  // call would wait for theirs, which is no half-close.
  const int r = SSL_shutdown(ssl_.get());
  if (r < 0) error_ = "shutdown: " + openssl_error();
  return r >= 0;
}

bool TlsConnection::read_to_close(uint64_t* bytes, std::string* sha, int timeout_ms) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), nullptr);
  std::vector<char> buf(64 * 1024);
  *bytes = 0;
  bool ok = false;
  for (;;) {
    if (SSL_pending(ssl_.get()) == 0 && !wait_readable(fd_.get(), timeout_ms)) {
      error_ = "read: timed out";
      break;
    }
    size_t n = 0;
    if (SSL_read_ex(ssl_.get(), buf.data(), buf.size(), &n) == 1) {
      EVP_DigestUpdate(md, buf.data(), n);
      *bytes += n;
      continue;
    }
    const int e = SSL_get_error(ssl_.get(), 0);
    if (e == SSL_ERROR_ZERO_RETURN) {
      ok = true;
    } else {
      error_ = "read: SSL error " + std::to_string(e) + " " + openssl_error();
    }
    break;
  }
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(md, d, &len);
  EVP_MD_CTX_free(md);
  *sha = hex(d, len);
  return ok;
}

std::string TlsConnection::read(size_t n, int timeout_ms) {
  std::string out;
  std::vector<char> buf(n);
  while (out.size() < n) {
    if (SSL_pending(ssl_.get()) == 0 && !wait_readable(fd_.get(), timeout_ms)) break;
    size_t got = 0;
    if (SSL_read_ex(ssl_.get(), buf.data(), n - out.size(), &got) != 1) break;
    out.append(buf.data(), got);
  }
  return out;
}

std::string TlsConnection::read_some(int timeout_ms) {
  char buf[16384];
  size_t got = 0;
  if (SSL_pending(ssl_.get()) == 0 && !wait_readable(fd_.get(), timeout_ms)) return "";
  if (SSL_read_ex(ssl_.get(), buf, sizeof(buf), &got) != 1) return "";
  return std::string(buf, got);
}

TlsConnection tls_connect(SSL_CTX* ctx, uint16_t port, const std::string& server_name, bool* handshook,
                          SSL_SESSION* resume) {
  Fd fd = connect_loopback(port);
  if (!fd) {
    *handshook = false;
    return TlsConnection();
  }
  TlsConnection c(ctx, std::move(fd), false);
  if (!server_name.empty()) {
    SSL_set_tlsext_host_name(c.ssl(), server_name.c_str());
    SSL_set1_host(c.ssl(), server_name.c_str());
  }
  if (resume != nullptr) SSL_set_session(c.ssl(), resume);
  *handshook = c.handshake();
  return c;
}

TlsBackend::TlsBackend(const TlsOptions& options, Serve serve)
    : ctx_(make_tls_context(options, true)), serve_(std::move(serve)), listener_(listen_loopback(&port_)) {
  acceptor_ = std::thread([this] { run(); });
}

TlsBackend::~TlsBackend() {
  stop_ = true;
  ::shutdown(listener_.get(), SHUT_RDWR);
  acceptor_.join();
  for (std::thread& t : threads_) t.join();
}

void TlsBackend::run() {
  while (!stop_) {
    if (!wait_readable(listener_.get(), 100)) continue;
    Fd fd(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd) continue;
    threads_.emplace_back([this, fd = fd.release()]() mutable {
      TlsConnection c(ctx_.get(), Fd(fd), true);
      if (!c.handshake()) {
        ++failed_;
        return;
      }
      ++handshakes_;
      serve_(c);
    });
  }
}

TlsBackend::Serve tls_name_then_echo(const std::string& name) {
  return [name](TlsConnection& c) {
    if (!c.write_all(name + "\n")) return;
    for (;;) {
      const std::string got = c.read_some(10000);
      if (got.empty() || !c.write_all(got)) break;
    }
    c.shutdown_write();
  };
}

}  // namespace ringlb::testing
