#include "server/health/tls_client.h"

#include <openssl/err.h>

namespace ringlb::health {

namespace {

// OpenSSL's new-session callback: the session goes to the client whose connection got it
// (1: we keep the reference). A TLS 1.3 server may send several tickets; the last one is kept.
int take_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* client = static_cast<TlsClient*>(SSL_get_app_data(ssl));
  if (client == nullptr) return 0;
  client->on_new_session(session);
  return 1;
}

}  // namespace

void TlsSession::reset(SSL_SESSION* taken) {
  if (session_ != nullptr) SSL_SESSION_free(session_);
  session_ = taken;
}

TlsContext::TlsContext() {
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (ctx_ == nullptr) return;
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
  // Client sessions through the callback only: each backend keeps its own (TlsSession).
  SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx_, take_new_session);
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

TlsClient::TlsClient(const TlsContext& ctx, const std::string& sni, TlsSession* session) : session_(session) {
  if (ctx.get() == nullptr) {
    error_ = "no TLS context";
    return;
  }
  ssl_ = SSL_new(ctx.get());
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  if (ssl_ == nullptr || in_ == nullptr || out_ == nullptr) {
    SSL_free(ssl_);
    BIO_free(in_);
    BIO_free(out_);
    ssl_ = nullptr;
    error_ = "out of memory";
    return;
  }
  // An empty memory BIO reads as "retry later", not as EOF: more bytes may come from the ring.
  BIO_set_mem_eof_return(in_, -1);
  SSL_set_bio(ssl_, in_, out_);
  SSL_set_connect_state(ssl_);
  if (!sni.empty()) SSL_set_tlsext_host_name(ssl_, sni.c_str());
  SSL_set_app_data(ssl_, this);
  // A session for another server name would not be resumed: the server declines it and the
  // handshake is a full one, as without a session.
  if (session_ != nullptr && session_->get() != nullptr) SSL_set_session(ssl_, session_->get());
}

void TlsClient::on_new_session(SSL_SESSION* taken) {
  got_session_ = true;
  if (session_ != nullptr) {
    session_->reset(taken);
  } else {
    SSL_SESSION_free(taken);
  }
}

TlsClient::~TlsClient() {
  // A check ends by closing its socket, without a close_notify. OpenSSL takes a connection freed
  // that way as cut short and marks its session not resumable; the check decides instead (a
  // failed check drops the session, TlsSession), so the connection counts as shut down.
  if (ssl_ != nullptr && SSL_is_init_finished(ssl_)) SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_free(ssl_);
}

TlsClient::Status TlsClient::fail(int ret, const char* what) {
  const int code = SSL_get_error(ssl_, ret);
  if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) return kWant;
  if (code == SSL_ERROR_ZERO_RETURN) return kClosed;
  char buf[256];
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e != 0) {
    ERR_error_string_n(e, buf, sizeof(buf));
    error_ = std::string(what) + ": " + buf;
  } else {
    error_ = std::string(what) + ": SSL error " + std::to_string(code);
  }
  return kError;
}

TlsClient::Status TlsClient::handshake() {
  const int ret = SSL_do_handshake(ssl_);
  return ret == 1 ? kDone : fail(ret, "handshake");
}

void TlsClient::feed(const char* data, size_t len) { BIO_write(in_, data, static_cast<int>(len)); }

void TlsClient::take_output(std::string* out) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(out_, &data);
  if (n <= 0) return;
  out->append(data, static_cast<size_t>(n));
  (void)BIO_reset(out_);
}

bool TlsClient::write(const std::string& data) {
  const int ret = SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
  return ret > 0 || fail(ret, "write") == kWant;
}

int TlsClient::read(char* buf, size_t cap) {
  const int ret = SSL_read(ssl_, buf, static_cast<int>(cap));
  return ret > 0 ? ret : fail(ret, "read");
}

}  // namespace ringlb::health
