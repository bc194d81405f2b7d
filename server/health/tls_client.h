// A TLS client that does no I/O of its own: OpenSSL reads ciphertext from one memory BIO and
// writes it to another, and the health checker moves those bytes with its ring's send and recv.
// Its sockets are io_uring direct descriptors (no fd OpenSSL could read), and its one thread must
// never block, so OpenSSL is left with pure computation.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <memory>
#include <string>

namespace ringlb::health {

// The session a backend's last good check got (TLS 1.2 session id or TLS 1.3 ticket), which
// its next check resumes, as HAProxy and Envoy do for their checks: a resumed handshake skips
// the certificate (OpenSSL 3's decoders are most of a full handshake's cost here). Empty until a
// handshake gives one; dropped when a check fails, so the check after a failure is a full one.
class TlsSession {
 public:
  TlsSession() = default;
  ~TlsSession() { reset(nullptr); }
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;
  SSL_SESSION* get() const { return session_; }
  void reset(SSL_SESSION* taken);  // takes a reference the caller had

 private:
  SSL_SESSION* session_ = nullptr;
};

// The checker's one SSL_CTX: client method, no certificate verification (a check asks whether
// the backend completes a handshake, as HAProxy's `check-ssl verify none`). Sessions go to the
// TlsSession of the client that got them, never to a shared cache.
class TlsContext {
 public:
  TlsContext();
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  SSL_CTX* get() const { return ctx_; }  // null if OpenSSL could not make one

 private:
  SSL_CTX* ctx_ = nullptr;
};

class TlsClient {
 public:
  enum Status { kDone = 1, kWant = 0, kError = -1, kClosed = -2 };

  // `sni` empty: no server name. `session` (may be null): resumed if it holds one, and given
  // whatever session this connection gets (it must outlive the client).
  TlsClient(const TlsContext& ctx, const std::string& sni, TlsSession* session = nullptr);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;
  bool ok() const { return ssl_ != nullptr; }

  // Runs the handshake as far as the bytes fed so far allow: kDone, kWant (send what
  // take_output gives, then feed what arrives), or kError (error() says why).
  Status handshake();
  // Ciphertext from the backend.
  void feed(const char* data, size_t len);
  // Appends the ciphertext waiting to go to the backend to *out.
  void take_output(std::string* out);
  // Encrypts `data` (after the handshake); false on error.
  bool write(const std::string& data);
  // Decrypted bytes into buf: > 0 bytes, or kWant (feed more), kClosed (close_notify), kError.
  int read(char* buf, size_t cap);
  // Ciphertext fed but not yet a whole record: still in the memory BIO, or already in
  // OpenSSL's record buffer (which a partial record is read into before WANT_READ).
  bool pending_input() const {
    return ssl_ != nullptr && (SSL_has_pending(ssl_) == 1 || BIO_ctrl_pending(in_) > 0);
  }
  // After the handshake: TLS 1.3 (whose sessions come as tickets after the handshake).
  bool tls13() const { return ssl_ != nullptr && SSL_version(ssl_) == TLS1_3_VERSION; }
  // After the handshake: the session was resumed (no certificate was sent).
  bool resumed() const { return ssl_ != nullptr && SSL_session_reused(ssl_) == 1; }
  // A session (TLS 1.2's at the handshake, TLS 1.3's with the ticket after it) went to `session`.
  bool got_session() const { return got_session_; }
  // Called by OpenSSL (the context's new-session callback) for this client's connection.
  void on_new_session(SSL_SESSION* taken);
  // The OpenSSL error queue's first entry (or what SSL_get_error said), for the failure reason.
  const std::string& error() const { return error_; }

 private:
  Status fail(int ret, const char* what);

  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // owned by ssl_
  BIO* out_ = nullptr;  // owned by ssl_
  TlsSession* session_ = nullptr;
  bool got_session_ = false;
  std::string error_;
};

}  // namespace ringlb::health
