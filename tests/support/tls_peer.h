// TLS peers for end-to-end tests, on plain OpenSSL over blocking loopback sockets: a client that
// connects to ringlb, and a backend server ringlb originates to. Both speak TLS as any other
// implementation would (nothing of ringlb's own TLS code is used), and stream large transfers
// through SHA-256 so that a gigabyte is checked without being kept.
#pragma once

#include <openssl/ssl.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/net.h"

namespace ringlb::testing {

struct TlsOptions {
  std::string server_name;         // SNI sent (client), none when empty
  std::vector<std::string> alpn;   // offered (client) or accepted in this order (server)
  std::string ca_file;             // verify the peer against it (client: chain and server_name)
  std::string cert, key;           // our certificate (a server always needs one)
  bool require_client_cert = false;  // server: ask for and require one (against ca_file)
};

// One TLS connection over a blocking socket.
class TlsConnection {
 public:
  TlsConnection() = default;
  TlsConnection(SSL_CTX* ctx, Fd fd, bool server);
  ~TlsConnection();
  TlsConnection(TlsConnection&&) = default;
  TlsConnection& operator=(TlsConnection&&) = default;

  // The handshake; false with error() saying why.
  bool handshake();
  bool ok() const { return ssl_ != nullptr; }
  const std::string& error() const { return error_; }
  std::string alpn() const;
  std::string version() const;
  std::string peer_cn() const;
  bool resumed() const;
  SSL* ssl() const { return ssl_.get(); }
  int fd() const { return fd_.get(); }

  bool write_all(const std::string& data);
  // `bytes` of pattern_byte(i) for i from 0, in chunks; false when a write failed.
  bool write_pattern(uint64_t bytes, std::string* sha256_hex);
  // Our close_notify, our side only (a half-close): the peer may still send.
  bool shutdown_write();
  // Reads until the peer's close_notify (true) or an error/timeout (false: error() says which),
  // hashing what came.
  bool read_to_close(uint64_t* bytes, std::string* sha256_hex, int timeout_ms = 120000);
  // Reads up to `n` bytes (less at close_notify); empty on error.
  std::string read(size_t n, int timeout_ms = 5000);
  // What one read gives (empty at close_notify, an error or the timeout).
  std::string read_some(int timeout_ms = 5000);

 private:
  struct SslFree { void operator()(SSL* s) const { SSL_free(s); } };
  std::unique_ptr<SSL, SslFree> ssl_;
  Fd fd_;
  std::string error_;
};

struct CtxFree { void operator()(SSL_CTX* c) const { SSL_CTX_free(c); } };
using CtxPtr = std::unique_ptr<SSL_CTX, CtxFree>;

// A client context (verifying when ca_file is set) or a server one.
CtxPtr make_tls_context(const TlsOptions& options, bool server);

// Connects to 127.0.0.1:port and handshakes; check ok() and handshake's result via error().
TlsConnection tls_connect(SSL_CTX* ctx, uint16_t port, const std::string& server_name, bool* handshook,
                          SSL_SESSION* resume = nullptr);

// A TLS server on 127.0.0.1 that runs `serve` for each connection in a thread of its own, after
// the handshake (connections whose handshake fails are counted).
class TlsBackend {
 public:
  using Serve = std::function<void(TlsConnection&)>;
  TlsBackend(const TlsOptions& options, Serve serve);
  ~TlsBackend();
  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int handshakes() const { return handshakes_.load(); }
  int failed_handshakes() const { return failed_.load(); }

 private:
  void run();
  CtxPtr ctx_;
  Serve serve_;
  uint16_t port_ = 0;  // before listener_, which sets it
  Fd listener_;
  std::atomic<bool> stop_{false};
  std::atomic<int> handshakes_{0}, failed_{0};
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// Sends one line "NAME\n" and then echoes: for tests that ask which backend answered.
TlsBackend::Serve tls_name_then_echo(const std::string& name);

std::string sha256_hex_of(const std::string& data);

}  // namespace ringlb::testing
