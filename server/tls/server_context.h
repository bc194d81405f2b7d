// A terminating listener's TLS: one SSL_CTX per worker (OpenSSL 3.0 serialises threads on the
// objects they share: openssl#23388, haproxy#2454), each with its own copy of the certificates
// and the client CAs, all with the same ticket keys. Built at start-up and by each reload as a
// whole new ServerContextSet: the caller swaps it in (a shared_ptr), new handshakes use it, and
// a connection keeps the context it started with for as long as it lives.
//
// Each SSL_CTX: the certificate chosen per ClientHello (certificates.h), ALPN by the server's
// preference, the minimum version, cipher lists, client certificates against client-ca
// (required or optional), renegotiation off, a session cache, and session tickets whose keys
// every worker shares and that rotate (ticket_keys.h).
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "server/base/error.h"
#include "server/config/config.h"
#include "server/tls/certificates.h"
#include "server/tls/notes.h"
#include "server/tls/openssl.h"
#include "server/tls/ticket_keys.h"

namespace ringlb::tls {

// One worker's SSL_CTX for one listener. Used by that worker's thread only.
class ServerContext {
 public:
  SSL_CTX* ctx() const { return ctx_.get(); }
  const CertificateSet& certificates() const { return *certificates_; }
  const std::string& listener() const { return listener_; }

 private:
  friend class ServerContextSet;
  static int on_client_hello(SSL* ssl, int* alert, void* arg);
  static int on_alpn(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                     unsigned int inlen, void* arg);
  static int on_ticket_key(SSL* ssl, unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                           HMAC_CTX* hmac, int enc);

  SslCtxPtr ctx_;
  std::string listener_;
  std::shared_ptr<const CertificateSet> certificates_;  // this worker's copy
  std::string alpn_;                                   // wire format: length-prefixed names
  std::shared_ptr<TicketKeys> ticket_keys_;            // null: no tickets
  mutable TicketKeys::Ring ring_;                      // this worker's copy of the keys
};

struct ServerOptions {
  std::string listener;  // its name: the session id context, and in messages
  unsigned workers = 1;
  int64_t now = 0;       // Unix seconds, for the certificates' expiry (0: the clock's)
  // The ticket keys of the set this one replaces: kept by a reload (unless the config names a
  // file, which is read again), so a reload invalidates no ticket. Null: new keys.
  std::shared_ptr<TicketKeys> ticket_keys;
};

class ServerContextSet {
 public:
  // Reads every file the config names (certificates, keys, client-ca, ticket keys) and makes
  // `options.workers` contexts. An error is "FILE: reason" (one line per broken file); nothing
  // is made then, so a reload that fails keeps the old set. *warnings: certificates expiring
  // within 14 days.
  static Status build(const TlsListenerConfig& config, const ServerOptions& options,
                      std::shared_ptr<const ServerContextSet>* out, std::vector<std::string>* warnings);

  size_t workers() const { return workers_.size(); }
  // Worker i's context: a connection holds this pointer (and so its SSL_CTX) until it ends.
  const std::shared_ptr<const ServerContext>& worker(size_t i) const { return workers_[i]; }
  const std::shared_ptr<TicketKeys>& ticket_keys() const { return ticket_keys_; }
  const TlsListenerConfig& config() const { return config_; }

  // Each certificate's name and expiry (Unix seconds), for
  // ringlb_tls_certificate_expiry_timestamp_seconds{listener,name}.
  struct Expiry {
    std::string name;
    int64_t not_after;
  };
  std::vector<Expiry> expiries() const;

 private:
  TlsListenerConfig config_;
  std::shared_ptr<const CertificateSet> certificates_;
  std::shared_ptr<TicketKeys> ticket_keys_;
  std::vector<std::shared_ptr<const ServerContext>> workers_;
};

}  // namespace ringlb::tls
