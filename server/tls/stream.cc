#include "server/tls/stream.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>

#include "server/tls/certificates.h"

namespace ringlb::tls {

const char* failure_name(Failure f) {
  switch (f) {
    case Failure::kNone: return "";
    case Failure::kHandshakeTimeout: return "tls_handshake_timeout";
    case Failure::kNoCertificate: return "tls_no_certificate";
    case Failure::kBadCertificate: return "tls_bad_certificate";
    case Failure::kProtocol: return "tls_protocol";
  }
  return "tls_protocol";
}

// The BIO between OpenSSL and a Stream: reads come from the fed bytes in place, writes append
// to the stream's output. An empty input is "retry" (more may come), unless the peer's FIN came.
struct StreamBio {
  static int write_ex(BIO* b, const char* data, size_t len, size_t* written) {
    auto* s = static_cast<Stream*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    s->out_.insert(s->out_.end(), reinterpret_cast<const uint8_t*>(data), reinterpret_cast<const uint8_t*>(data) + len);
    *written = len;
    return 1;
  }
  static int read_ex(BIO* b, char* dst, size_t cap, size_t* read) {
    auto* s = static_cast<Stream*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    *read = s->read_input(reinterpret_cast<uint8_t*>(dst), cap);
    if (*read > 0) return 1;
    if (!s->input_eof_) BIO_set_retry_read(b);
    return 0;
  }
  static long ctrl(BIO* b, int cmd, long, void*) {
    const auto* s = static_cast<const Stream*>(BIO_get_data(b));
    switch (cmd) {
      case BIO_CTRL_FLUSH: return 1;
      case BIO_CTRL_PENDING: return static_cast<long>(s->unread_input());
      case BIO_CTRL_WPENDING: return static_cast<long>(s->pending_output());
      case BIO_CTRL_EOF: return s->input_eof_ && s->unread_input() == 0;
      default: return 0;
    }
  }
  static int create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
  }
  static int destroy(BIO*) { return 1; }

  static BIO_METHOD* method() {
    static BIO_METHOD* const m = [] {
      BIO_METHOD* meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ringlb stream");
      BIO_meth_set_write_ex(meth, write_ex);
      BIO_meth_set_read_ex(meth, read_ex);
      BIO_meth_set_ctrl(meth, ctrl);
      BIO_meth_set_create(meth, create);
      BIO_meth_set_destroy(meth, destroy);
      return meth;
    }();
    return m;
  }

  static bool attach(Stream* s, SSL* ssl) {
    BIO* bio = BIO_new(method());
    if (bio == nullptr) return false;
    BIO_set_data(bio, s);
    SSL_set_bio(ssl, bio, bio);  // one BIO both ways: SSL takes our one reference
    return true;
  }
};

Stream::Stream(std::shared_ptr<const ServerContext> context) : server_(std::move(context)) {
  ssl_.reset(SSL_new(server_->ctx()));
  if (!ssl_ || !StreamBio::attach(this, ssl_.get())) {
    ssl_.reset();
    return;
  }
  SSL_set_accept_state(ssl_.get());
  SSL_set_app_data(ssl_.get(), &notes_);
}

Stream::Stream(std::shared_ptr<ClientContext> context, const ClientOptions& options) : client_(std::move(context)) {
  ssl_.reset(SSL_new(client_->ctx()));
  if (!ssl_ || !StreamBio::attach(this, ssl_.get())) {
    ssl_.reset();
    return;
  }
  SSL* ssl = ssl_.get();
  SSL_set_connect_state(ssl);
  notes_.backend = options.backend;
  SSL_set_app_data(ssl, &notes_);
  const TlsClusterConfig& c = client_->config();
  if (!c.sni.empty()) {
    SSL_set_tlsext_host_name(ssl, c.sni.c_str());
    notes_.server_name = c.sni;
  }
  const std::string& name = c.sni.empty() ? options.verify_name : c.sni;
  if (c.verify && !name.empty()) {
    // An IP address is checked against the certificate's IP names, anything else as a host.
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) != 1) {
      ERR_clear_error();
      SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      SSL_set1_host(ssl, name.c_str());
    }
  }
  if (SSL_SESSION* s = client_->session(options.backend)) SSL_set_session(ssl, s);
}

Stream::~Stream() {
  // A connection that ended without close_notify (most TCP clients just close) would make
  // OpenSSL drop its session as cut short; one that did not fail keeps it resumable.
  if (ssl_ && done_ && error_.empty()) SSL_set_shutdown(ssl_.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
}

size_t Stream::read_input(uint8_t* dst, size_t cap) {
  size_t n = 0;
  if (spill_pos_ < spill_.size()) {
    n = std::min(cap, spill_.size() - spill_pos_);
    memcpy(dst, spill_.data() + spill_pos_, n);
    spill_pos_ += n;
    if (spill_pos_ == spill_.size()) {
      spill_.clear();
      spill_pos_ = 0;
    }
  }
  if (n < cap && view_len_ > 0) {
    const size_t m = std::min(cap - n, view_len_);
    memcpy(dst + n, view_, m);
    view_ += m;
    view_len_ -= m;
    n += m;
  }
  return n;
}

void Stream::feed(const uint8_t* data, size_t len) {
  release_input();
  view_ = data;
  view_len_ = len;
}

void Stream::release_input() {
  if (view_len_ == 0) return;
  spill_.erase(0, spill_pos_);
  spill_pos_ = 0;
  spill_.append(reinterpret_cast<const char*>(view_), view_len_);
  view_ = nullptr;
  view_len_ = 0;
}

void Stream::feed_eof() { input_eof_ = true; }

void Stream::timed_out() {
  if (done_ || failure_ != Failure::kNone) return;
  failure_ = Failure::kHandshakeTimeout;
  error_ = "the handshake did not complete in time";
}

void Stream::fail(int ret) {
  const int code = SSL_get_error(ssl_.get(), ret);
  const unsigned long e = ERR_peek_error();
  const int reason = ERR_GET_LIB(e) == ERR_LIB_SSL ? ERR_GET_REASON(e) : 0;
  if (!done_) {
    failure_ = reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE || reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED
                   ? Failure::kNoCertificate
               : reason == SSL_R_CERTIFICATE_VERIFY_FAILED ? Failure::kBadCertificate
                                                           : Failure::kProtocol;
  }
  error_ = code == SSL_ERROR_SYSCALL && e == 0 ? std::string("the peer closed the connection")
                                               : openssl_error("TLS error");
  if (failure_ == Failure::kBadCertificate) {
    error_ += ": " + std::string(X509_verify_cert_error_string(SSL_get_verify_result(ssl_.get())));
  }
  // A backend whose handshake failed starts afresh next time.
  if (client_ && !done_) client_->forget(notes_.backend);
}

Stream::Handshake Stream::handshake() {
  if (done_) return Handshake::kDone;
  if (failure_ != Failure::kNone || !ssl_) return Handshake::kFailed;
  ERR_clear_error();
  const int r = SSL_do_handshake(ssl_.get());
  if (r == 1) {
    done_ = true;
    // The write side ended during the handshake: its close_notify goes now.
    if (shut_write_) {
      shut_write_ = false;
      shutdown_write();
    }
    return Handshake::kDone;
  }
  const int code = SSL_get_error(ssl_.get(), r);
  if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) return Handshake::kWant;
  fail(r);
  return Handshake::kFailed;
}

ssize_t Stream::read(void* dst, size_t cap) {
  if (!error_.empty() || !ssl_) return kError;
  if (!done_) {
    const Handshake h = handshake();
    if (h != Handshake::kDone) return h == Handshake::kWant ? kWant : kError;
  }
  if (eof_) return kEof;
  ERR_clear_error();
  size_t n = 0;
  const int r = SSL_read_ex(ssl_.get(), dst, cap, &n);
  if (r == 1) return static_cast<ssize_t>(n);
  const int code = SSL_get_error(ssl_.get(), r);
  if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) return kWant;
  if (code == SSL_ERROR_ZERO_RETURN) {
    eof_ = true;
    return kEof;
  }
  const unsigned long e = ERR_peek_error();
  if ((code == SSL_ERROR_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) ||
      (code == SSL_ERROR_SYSCALL && e == 0)) {
    // A FIN without close_notify: the plaintext side ends too (a TCP proxy cannot tell a
    // truncation from a client that just closes).
    ERR_clear_error();
    eof_ = truncated_ = true;
    return kEof;
  }
  fail(r);
  return kError;
}

ssize_t Stream::write(const void* src, size_t len) {
  if (!error_.empty() || !ssl_ || shut_write_) return kError;
  const size_t pending = pending_output();
  if (!done_ || len == 0 || pending >= output_limit_) return 0;
  const size_t n = std::min(len, output_limit_ - pending);
  ERR_clear_error();
  size_t written = 0;
  const int r = SSL_write_ex(ssl_.get(), src, n, &written);
  if (r == 1) return static_cast<ssize_t>(written);
  const int code = SSL_get_error(ssl_.get(), r);
  if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) return 0;
  fail(r);
  return kError;
}

void Stream::shutdown_write() {
  if (shut_write_ || !ssl_) return;
  shut_write_ = true;
  if (!done_ || !error_.empty()) return;
  ERR_clear_error();
  SSL_shutdown(ssl_.get());  // 0: close_notify sent, the peer's not yet read; that is the point
  ERR_clear_error();
}

size_t Stream::take_output(void* dst, size_t cap) {
  const size_t n = std::min(cap, pending_output());
  if (n == 0) return 0;
  memcpy(dst, out_.data() + out_pos_, n);
  consume_output(n);
  return n;
}

void Stream::consume_output(size_t n) {
  out_pos_ += std::min(n, pending_output());
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  } else if (out_pos_ >= kDefaultOutputLimit) {
    out_.erase(out_.begin(), out_.begin() + static_cast<long>(out_pos_));
    out_pos_ = 0;
  }
}

const char* Stream::version() const { return ssl_ ? SSL_get_version(ssl_.get()) : ""; }

const char* Stream::cipher() const {
  const char* c = ssl_ ? SSL_get_cipher_name(ssl_.get()) : nullptr;
  return c != nullptr ? c : "";
}

std::string_view Stream::alpn() const {
  const unsigned char* p = nullptr;
  unsigned int len = 0;
  if (ssl_) SSL_get0_alpn_selected(ssl_.get(), &p, &len);
  return p == nullptr ? std::string_view() : std::string_view(reinterpret_cast<const char*>(p), len);
}

bool Stream::resumed() const { return ssl_ && SSL_session_reused(ssl_.get()) == 1; }

bool Stream::peer_certificate() const { return ssl_ && SSL_get0_peer_certificate(ssl_.get()) != nullptr; }

std::string Stream::peer_cn() const {
  X509* peer = ssl_ ? SSL_get0_peer_certificate(ssl_.get()) : nullptr;
  if (peer == nullptr) return "";
  const X509_NAME* subject = X509_get_subject_name(peer);
  const int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at < 0) return "";
  unsigned char* text = nullptr;
  const int n = ASN1_STRING_to_UTF8(&text, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
  if (n < 0) return "";
  std::string cn(reinterpret_cast<char*>(text), static_cast<size_t>(n));
  OPENSSL_free(text);
  return cn;
}

std::string Stream::peer_der() const {
  X509* peer = ssl_ ? SSL_get0_peer_certificate(ssl_.get()) : nullptr;
  unsigned char* der = nullptr;
  const int n = peer != nullptr ? i2d_X509(peer, &der) : -1;
  if (n <= 0) return "";
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  return out;
}

long Stream::verify_result() const { return ssl_ ? SSL_get_verify_result(ssl_.get()) : X509_V_OK; }

ProxyTlvs Stream::proxy_tlvs(bool with_certificate) const {
  ProxyTlvs t;
  t.alpn = std::string(alpn());
  t.authority = notes_.server_name;
  t.ssl = true;
  t.ssl_client = kPp2ClientSsl;
  t.ssl_version = version();
  t.ssl_cipher = cipher();
  if (peer_certificate()) {
    // As HAProxy: CERT_SESS when the session has one, CERT_CONN when it came on this very
    // connection (not resumed), and the verify result only then.
    t.ssl_client |= kPp2ClientCertSess | (resumed() ? 0 : kPp2ClientCertConn);
    t.ssl_verify = static_cast<uint32_t>(verify_result());
    t.ssl_cn = peer_cn();
    if (with_certificate) t.ssl_client_cert = peer_der();
  }
  // The signature and key algorithms of the certificate ringlb served.
  if (X509* local = ssl_ ? SSL_get_certificate(ssl_.get()) : nullptr) {
    t.ssl_sig_alg = OBJ_nid2sn(X509_get_signature_nid(local));
    if (const EVP_PKEY* key = X509_get0_pubkey(local)) {
      const int bits = EVP_PKEY_get_bits(key);
      switch (EVP_PKEY_get_base_id(key)) {
        case EVP_PKEY_RSA: t.ssl_key_alg = "RSA" + std::to_string(bits); break;
        case EVP_PKEY_EC: t.ssl_key_alg = "EC" + std::to_string(bits); break;
        case EVP_PKEY_DSA: t.ssl_key_alg = "DSA" + std::to_string(bits); break;
        default: break;
      }
    }
  }
  return t;
}

}  // namespace ringlb::tls
