// A cluster's TLS origination: one SSL_CTX per worker that verifies the backends' chains (against
// ca-file, else the system's CA file, read whole at start-up: no lookups in /etc/ssl/certs during
// a handshake) and names (on by default), sends the SNI and ALPN, may present a client
// certificate, and resumes each backend's last session (a per-backend cache, per worker).
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "server/base/error.h"
#include "server/config/config.h"
#include "server/tls/openssl.h"

namespace ringlb::tls {

// One worker's SSL_CTX for one cluster, and its backends' sessions. Used by that worker only.
class ClientContext {
 public:
  ~ClientContext();
  SSL_CTX* ctx() const { return ctx_.get(); }
  const TlsClusterConfig& config() const { return config_; }
  const std::string& cluster() const { return cluster_; }
  const std::string& alpn_wire() const { return alpn_; }

  // The session the backend's last handshake got (null: none): its next connection resumes it.
  SSL_SESSION* session(uint32_t backend) const;
  // Takes a reference the caller had (OpenSSL's new-session callback gives one).
  void remember(uint32_t backend, SSL_SESSION* taken);
  // A failed handshake or verification, or a backend gone: its next connection is a full one.
  void forget(uint32_t backend);
  size_t sessions() const { return sessions_.size(); }

 private:
  friend class ClientContextSet;
  static int on_new_session(SSL* ssl, SSL_SESSION* session);

  SslCtxPtr ctx_;
  TlsClusterConfig config_;
  std::string cluster_;
  std::string alpn_;
  std::unordered_map<uint32_t, SSL_SESSION*> sessions_;
};

class ClientContextSet {
 public:
  // Reads ca-file (or the system's CA file) and the client certificate, and makes `workers`
  // contexts. Errors "FILE: reason", or "cluster NAME: reason".
  static Status build(const TlsClusterConfig& config, const std::string& cluster, unsigned workers,
                      std::shared_ptr<const ClientContextSet>* out);
  size_t workers() const { return workers_.size(); }
  const std::shared_ptr<ClientContext>& worker(size_t i) const { return workers_[i]; }

 private:
  std::vector<std::shared_ptr<ClientContext>> workers_;
};

// The file of the system's CAs (OpenSSL's default, SSL_CERT_FILE when set).
std::string system_ca_file();

}  // namespace ringlb::tls
