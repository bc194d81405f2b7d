// Certificates made at test time with OpenSSL's API (no private key is committed): CAs, leaves
// with names, RSA or ECDSA keys, any validity window, written as PEM files. And a pump that moves
// bytes between two in-memory TLS engines until neither has anything to say.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/config/config.h"
#include "server/tls/certificates.h"
#include "server/tls/openssl.h"

namespace ringlb::tls::pki {

struct Issued {
  X509Ptr cert;
  EvpPkeyPtr key;
};

struct Spec {
  std::string cn;
  std::vector<std::string> dns;  // subjectAltName DNS names
  std::vector<std::string> ips;  // and IP addresses
  KeyType key = KeyType::kEcdsa;
  int key_index = 0;             // a different index gives a different key of the same type
  int64_t not_before = -3600;    // seconds from now
  int64_t not_after = 30 * 86400;
  bool ca = false;
  bool client = false;           // extendedKeyUsage clientAuth (else serverAuth)
};

// A key of this type (RSA-2048 or P-256), the same one each time for one (type, index).
EvpPkeyPtr make_key(KeyType type, int index = 0);

// Signed by `issuer`, or self-signed when it is null.
Issued issue(const Spec& spec, const Issued* issuer = nullptr);

std::string pem(X509* cert);
std::string pem(EVP_PKEY* key);

// DIR/NAME.crt (the certificate, then `chain`) and DIR/NAME.key.
TlsCertificateFiles write_pair(const std::string& dir, const std::string& name, const Issued& leaf,
                               const std::vector<X509*>& chain = {});
// DIR/NAME (PEM certificates, one after another).
std::string write_certs(const std::string& dir, const std::string& name, const std::vector<X509*>& certs);
void write_text(const std::string& path, const std::string& text);

// The certificates most tests use, made once per process and written under `dir`: a CA and
// another CA; for www.example.com an RSA and an ECDSA certificate (listed first, so they are the
// default); a wildcard *.example.org; a client certificate of each CA.
struct StandardPki {
  explicit StandardPki(const std::string& dir);
  std::string dir;
  TlsCertificateFiles www_rsa, www_ec, wildcard, client, other_client;
  std::string ca_file, other_ca_file;
  // The server certificates, in that order, for a listener's `certificates`.
  std::vector<TlsCertificateFiles> server_certificates() const { return {www_rsa, www_ec, wildcard}; }
};

}  // namespace ringlb::tls::pki
