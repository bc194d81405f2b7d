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

// The checker's one SSL_CTX: client method, no certificate verification (a check asks whether
// the backend completes a handshake, as HAProxy's `check-ssl verify none`).
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

  // `sni` empty: no server name.
  TlsClient(const TlsContext& ctx, const std::string& sni);
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
  // The OpenSSL error queue's first entry (or what SSL_get_error said), for the failure reason.
  const std::string& error() const { return error_; }

 private:
  Status fail(int ret, const char* what);

  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // owned by ssl_
  BIO* out_ = nullptr;  // owned by ssl_
  std::string error_;
};

}  // namespace ringlb::health
