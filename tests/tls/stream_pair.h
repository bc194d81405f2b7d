// Two TLS endpoints in memory, joined by a loop that moves each one's output to the other until
// neither has anything left to say: ringlb's Stream (either role), or a plain OpenSSL SSL over
// memory BIOs standing for another implementation (TLS 1.1 only, chosen signature algorithms...).
#pragma once

#include <openssl/ssl.h>

#include <functional>
#include <string>

#include "server/tls/openssl.h"
#include "server/tls/stream.h"

namespace ringlb::tls::pki {

class Side {
 public:
  virtual ~Side() = default;
  virtual std::string take_output() = 0;
  // Gives it the peer's bytes and lets it run: the handshake, then reading into `got`.
  virtual void deliver(const std::string& bytes) = 0;
  virtual bool done() const = 0;
  std::string got;     // plaintext read so far
  bool eof = false;    // the peer's close_notify (or FIN) was read
  bool error = false;  // the connection broke
};

class StreamSide : public Side {
 public:
  explicit StreamSide(Stream* s) : s_(s) {}
  std::string take_output() override;
  void deliver(const std::string& bytes) override;
  bool done() const override { return s_->handshake_done(); }
  void drain();  // reads what was fed

 private:
  Stream* s_;
};

// A plain OpenSSL endpoint (client unless `server`), over memory BIOs. `prepare` sets up its SSL
// (SNI, signature algorithms, a session) before a client sends its hello.
class RawSide : public Side {
 public:
  RawSide(SSL_CTX* ctx, bool server, const std::function<void(SSL*)>& prepare = nullptr);
  // As a clean close (OpenSSL marks the session of a connection freed otherwise not resumable).
  ~RawSide() override;
  std::string take_output() override;
  void deliver(const std::string& bytes) override;
  bool done() const override { return SSL_is_init_finished(ssl_.get()) == 1; }
  SSL* ssl() const { return ssl_.get(); }
  void write(const std::string& data);
  bool failed = false;  // the handshake failed
  std::string error_text;

 private:
  void step();
  SslPtr ssl_;
  BIO* in_ = nullptr;
  BIO* out_ = nullptr;
};

// Moves bytes both ways until both are quiet (at most `rounds` times). Start the client first
// (its handshake() or a RawSide, which sends its hello when made).
void run(Side& a, Side& b, int rounds = 100);

}  // namespace ringlb::tls::pki
