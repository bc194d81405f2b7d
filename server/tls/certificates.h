// A terminating listener's certificates: each a PEM chain and its key, checked when loaded (a
// key that does not match, an expired certificate: refused; one expiring within 14 days: a
// warning), named by its own CN and subjectAltName DNS names, and chosen per client by SNI and
// signature algorithms the way HAProxy's ssl_clienthello.c does.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "server/base/error.h"
#include "server/config/config.h"
#include "server/tls/openssl.h"

namespace ringlb::tls {

// A certificate expiring within this long is worth a warning (and the alert's threshold).
inline constexpr int64_t kExpiryWarningSeconds = 14 * 24 * 3600;

enum class KeyType : uint8_t { kRsa, kEcdsa, kOther };

class Certificate {
 public:
  X509* x509() const { return x509_.get(); }
  EVP_PKEY* key() const { return key_.get(); }
  STACK_OF(X509) * chain() const { return chain_.get(); }  // the intermediates after it
  KeyType key_type() const { return key_type_; }
  // Its CN, then its subjectAltName DNS names not equal to it, in lower case: the names SNI
  // matches ("*.example.com" covers one label).
  const std::vector<std::string>& names() const { return names_; }
  // The name it goes by in metrics and logs: its first name, else its file.
  const std::string& label() const { return names_.empty() ? files_.cert : names_.front(); }
  int64_t not_after() const { return not_after_; }  // Unix seconds
  const TlsCertificateFiles& files() const { return files_; }

 private:
  friend class CertificateSet;
  TlsCertificateFiles files_;
  std::string cert_pem_, key_pem_;  // as read: decoded again for each worker's copy
  X509Ptr x509_;
  X509StackPtr chain_;
  EvpPkeyPtr key_;
  KeyType key_type_ = KeyType::kOther;
  std::vector<std::string> names_;
  int64_t not_after_ = 0;
};

// What a client's ClientHello says it can verify (HAProxy's has_rsa_sig / has_ecdsa_sig).
struct ClientSignatures {
  bool rsa = true;  // also a client without the signature_algorithms extension (< TLS 1.2)
  bool ecdsa = false;
};

// Reads the signature_algorithms extension's value (RFC 8446 4.2.3): ECDSA for any
// ecdsa_* scheme, RSA for rsa_pkcs1_* and rsa_pss_*. False when it is malformed.
bool parse_signature_algorithms(const uint8_t* ext, size_t len, ClientSignatures* out);

// Reads the server_name extension's value (RFC 6066 3): the host_name, lower case. False when
// it is malformed; true with an empty name when it holds none.
bool parse_server_name(const uint8_t* ext, size_t len, std::string* out);

// Inside a client-hello callback: the client's signatures (its sigalgs, and ECDSA only when one
// of its cipher suites this SSL allows can use an ECDSA certificate, as HAProxy checks) and its
// server name. False when an extension is malformed.
bool read_client_hello(SSL* ssl, ClientSignatures* signatures, std::string* server_name);

// The certificates of one listener, immutable once loaded (a reload loads a new set).
class CertificateSet {
 public:
  // Loads every pair; each error is "FILE: reason" (Status lines, all of them). `now` is Unix
  // seconds. *warnings gets "FILE: expires on DATE (in N days)" for each within
  // kExpiryWarningSeconds.
  static Status load(const std::vector<TlsCertificateFiles>& files, int64_t now,
                     std::shared_ptr<const CertificateSet>* out, std::vector<std::string>* warnings);

  // The same certificates decoded again from the bytes read: one copy per worker, so no two
  // workers share an EVP_PKEY (OpenSSL 3.0 locks inside shared keys).
  std::shared_ptr<const CertificateSet> copy() const;

  // The certificate for a client: exact name, else wildcard, else the default (the first
  // certificate and any other with the same names); among those, ECDSA when the client can
  // verify it, else RSA, else the first. Never null. `server_name` in lower case.
  const Certificate& select(std::string_view server_name, ClientSignatures client) const;

  size_t size() const { return certificates_.size(); }
  const Certificate& at(size_t i) const { return *certificates_[i]; }

 private:
  const Certificate& pick(const std::vector<size_t>& candidates, ClientSignatures client) const;
  void index();

  std::vector<std::unique_ptr<Certificate>> certificates_;
  std::unordered_map<std::string, std::vector<size_t>> exact_;     // name -> certificates
  std::unordered_map<std::string, std::vector<size_t>> wildcard_;  // "example.com" for "*.example.com"
  std::vector<size_t> defaults_;
};

// "FILE: reason" for a PEM chain and key that do not load, or do not go together; the
// certificate otherwise. Exposed for the client side (a cluster's client certificate).
Status load_certificate(const TlsCertificateFiles& files, X509Ptr* cert, X509StackPtr* chain, EvpPkeyPtr* key);

}  // namespace ringlb::tls
