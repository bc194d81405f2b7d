#include "server/tls/certificates.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <ctime>

namespace ringlb::tls {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string utf8(const ASN1_STRING* s) {
  unsigned char* out = nullptr;
  const int n = ASN1_STRING_to_UTF8(&out, s);
  if (n < 0) return "";
  std::string text(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  OPENSSL_free(out);
  return text;
}

int64_t unix_time(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

std::string date(int64_t t) {
  const time_t when = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&when, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// The default passphrase callback would prompt on the terminal: a key must not be encrypted.
int no_passphrase(char*, int, int, void*) { return -1; }

KeyType key_type_of(const EVP_PKEY* key) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS: return KeyType::kRsa;
    case EVP_PKEY_EC: return KeyType::kEcdsa;
    default: return KeyType::kOther;
  }
}

// The subject CN, then the subjectAltName DNS names, lower case, each once.
std::vector<std::string> names_of(X509* x509) {
  std::vector<std::string> names;
  const auto add = [&](std::string name) {
    name = lower(std::move(name));
    if (!name.empty() && std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  };
  const X509_NAME* subject = X509_get_subject_name(x509);
  const int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at >= 0) add(utf8(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at))));
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x509, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
    if (n->type == GEN_DNS) add(utf8(n->d.dNSName));
  }
  GENERAL_NAMES_free(sans);
  return names;
}

// Decodes a chain (the certificate, then its intermediates) and a key from PEM text.
Status decode(const TlsCertificateFiles& files, const std::string& cert_pem, const std::string& key_pem,
              X509Ptr* cert, X509StackPtr* chain, EvpPkeyPtr* key) {
  ERR_clear_error();
  BioPtr in(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  cert->reset(PEM_read_bio_X509(in.get(), nullptr, no_passphrase, nullptr));
  if (!*cert) return Status::error(files.cert + ": no PEM certificate in it (" + openssl_error("empty") + ")");
  chain->reset(sk_X509_new_null());
  while (X509* next = PEM_read_bio_X509(in.get(), nullptr, no_passphrase, nullptr)) sk_X509_push(chain->get(), next);
  // The loop ends at the end of the text (no start line): anything else is a broken chain.
  const unsigned long e = ERR_peek_last_error();
  if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
    return Status::error(files.cert + ": a certificate of the chain does not parse (" + openssl_error() + ")");
  }
  ERR_clear_error();
  BioPtr key_in(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  key->reset(PEM_read_bio_PrivateKey(key_in.get(), nullptr, no_passphrase, nullptr));
  if (!*key) {
    if (key_pem.find("ENCRYPTED") != std::string::npos) {
      ERR_clear_error();
      return Status::error(files.key + ": an encrypted key (ringlb cannot ask for a passphrase; store it unencrypted)");
    }
    return Status::error(files.key + ": no PEM private key in it (" + openssl_error("empty") + ")");
  }
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    ERR_clear_error();
    return Status::error(files.key + ": the key does not match the certificate in " + files.cert);
  }
  return Status();
}

}  // namespace

bool parse_signature_algorithms(const uint8_t* ext, size_t len, ClientSignatures* out) {
  if (len < 2) return false;
  const size_t list = (size_t{ext[0]} << 8) | ext[1];
  if (list + 2 != len || list % 2 != 0) return false;
  ClientSignatures s{false, false};
  for (size_t i = 2; i < len; i += 2) {
    const uint8_t hash = ext[i], sign = ext[i + 1];
    if (sign == 0x01) s.rsa = true;    // rsa_pkcs1_*
    if (sign == 0x03) s.ecdsa = true;  // ecdsa_*
    // rsa_pss_rsae_* (0x0804-0x0806) and rsa_pss_pss_* (0x0809-0x080b)
    if (hash == 0x08 && ((sign >= 0x04 && sign <= 0x06) || (sign >= 0x09 && sign <= 0x0b))) s.rsa = true;
  }
  *out = s;
  return true;
}

bool parse_server_name(const uint8_t* ext, size_t len, std::string* out) {
  out->clear();
  if (len < 2) return false;
  const size_t list = (size_t{ext[0]} << 8) | ext[1];
  if (list + 2 != len) return false;
  if (list == 0) return true;
  if (list < 3 || ext[2] != TLSEXT_NAMETYPE_host_name) return false;
  const size_t name = (size_t{ext[3]} << 8) | ext[4];
  if (name == 0 || name + 3 > list || name > TLSEXT_MAXLEN_host_name) return false;
  out->assign(reinterpret_cast<const char*>(ext + 5), name);
  if (out->find('\0') != std::string::npos) return false;
  *out = lower(std::move(*out));
  return true;
}

bool read_client_hello(SSL* ssl, ClientSignatures* signatures, std::string* server_name) {
  const unsigned char* ext = nullptr;
  size_t len = 0;
  server_name->clear();
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len) == 1 &&
      !parse_server_name(ext, len, server_name)) {
    return false;
  }
  *signatures = ClientSignatures{};
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_signature_algorithms, &ext, &len) == 1 &&
      !parse_signature_algorithms(ext, len, signatures)) {
    return false;
  }
  if (!signatures->ecdsa) return true;
  // A client that signs with ECDSA but offers no suite usable with an ECDSA certificate (a TLS
  // 1.2 client with RSA key exchange only) gets RSA, as HAProxy does.
  signatures->ecdsa = false;
  const unsigned char* suites = nullptr;
  const size_t n = SSL_client_hello_get0_ciphers(ssl, &suites);
  STACK_OF(SSL_CIPHER)* ours = SSL_get_ciphers(ssl);
  for (size_t i = 0; i + 1 < n && !signatures->ecdsa; i += 2) {
    const SSL_CIPHER* c = SSL_CIPHER_find(ssl, suites + i);
    if (c == nullptr || sk_SSL_CIPHER_find(ours, c) < 0) continue;
    const int auth = SSL_CIPHER_get_auth_nid(c);
    signatures->ecdsa = auth == NID_auth_ecdsa || auth == NID_auth_any;
  }
  return true;
}

Status load_certificate(const TlsCertificateFiles& files, X509Ptr* cert, X509StackPtr* chain, EvpPkeyPtr* key) {
  std::string cert_pem, key_pem, why;
  if (!read_file(files.cert, &cert_pem, &why)) return Status::error(files.cert + ": " + why);
  if (!read_file(files.key, &key_pem, &why)) return Status::error(files.key + ": " + why);
  return decode(files, cert_pem, key_pem, cert, chain, key);
}

Status CertificateSet::load(const std::vector<TlsCertificateFiles>& files, int64_t now,
                            std::shared_ptr<const CertificateSet>* out, std::vector<std::string>* warnings) {
  auto set = std::make_shared<CertificateSet>();
  Status status;
  for (const TlsCertificateFiles& f : files) {
    auto c = std::make_unique<Certificate>();
    c->files_ = f;
    std::string why;
    if (!read_file(f.cert, &c->cert_pem_, &why)) {
      status.add(Status::error(f.cert + ": " + why));
      continue;
    }
    if (!read_file(f.key, &c->key_pem_, &why)) {
      status.add(Status::error(f.key + ": " + why));
      continue;
    }
    Status s = decode(f, c->cert_pem_, c->key_pem_, &c->x509_, &c->chain_, &c->key_);
    if (!s.ok()) {
      status.add(s);
      continue;
    }
    c->not_after_ = unix_time(X509_get0_notAfter(c->x509_.get()));
    const int64_t not_before = unix_time(X509_get0_notBefore(c->x509_.get()));
    if (c->not_after_ <= now) {
      status.add(Status::error(f.cert + ": the certificate expired on " + date(c->not_after_)));
      continue;
    }
    if (c->not_after_ - now <= kExpiryWarningSeconds) {
      warnings->push_back(f.cert + ": the certificate expires on " + date(c->not_after_) + " (in " +
                          std::to_string((c->not_after_ - now) / 86400) + " days)");
    }
    if (not_before > now) warnings->push_back(f.cert + ": the certificate is not valid before " + date(not_before));
    c->key_type_ = key_type_of(c->key_.get());
    c->names_ = names_of(c->x509_.get());
    set->certificates_.push_back(std::move(c));
  }
  if (files.empty()) status.add(Status::error("no certificates"));
  if (!status.ok()) return status;
  set->index();
  *out = std::move(set);
  return Status();
}

std::shared_ptr<const CertificateSet> CertificateSet::copy() const {
  auto set = std::make_shared<CertificateSet>();
  for (const auto& c : certificates_) {
    auto d = std::make_unique<Certificate>();
    d->files_ = c->files_;
    d->cert_pem_ = c->cert_pem_;
    d->key_pem_ = c->key_pem_;
    // It decoded once from these bytes; only memory can fail now, and then the copy shares.
    if (!decode(d->files_, d->cert_pem_, d->key_pem_, &d->x509_, &d->chain_, &d->key_).ok()) {
      X509_up_ref(c->x509_.get());
      EVP_PKEY_up_ref(c->key_.get());
      d->x509_.reset(c->x509_.get());
      d->key_.reset(c->key_.get());
      d->chain_.reset(X509_chain_up_ref(c->chain_.get()));
    }
    d->key_type_ = c->key_type_;
    d->names_ = c->names_;
    d->not_after_ = c->not_after_;
    set->certificates_.push_back(std::move(d));
  }
  set->index();
  return set;
}

void CertificateSet::index() {
  for (size_t i = 0; i < certificates_.size(); ++i) {
    for (const std::string& name : certificates_[i]->names_) {
      if (name.rfind("*.", 0) == 0) {
        wildcard_[name.substr(2)].push_back(i);
      } else {
        exact_[name].push_back(i);
      }
    }
  }
  // The first certificate, and any other for the same names (its RSA or ECDSA twin).
  std::vector<std::string> first = certificates_.front()->names_;
  std::sort(first.begin(), first.end());
  for (size_t i = 0; i < certificates_.size(); ++i) {
    std::vector<std::string> names = certificates_[i]->names_;
    std::sort(names.begin(), names.end());
    if (i == 0 || names == first) defaults_.push_back(i);
  }
}

const Certificate& CertificateSet::pick(const std::vector<size_t>& candidates, ClientSignatures client) const {
  // HAProxy's order (ssl_sock_chose_sni_ctx): ECDSA if the client can, RSA if it can, another
  // kind, and the first as the last resort.
  for (const auto& [wanted, allowed] : {std::pair{KeyType::kEcdsa, client.ecdsa}, std::pair{KeyType::kRsa, client.rsa},
                                        std::pair{KeyType::kOther, true}}) {
    if (!allowed) continue;
    for (size_t i : candidates) {
      if (certificates_[i]->key_type_ == wanted) return *certificates_[i];
    }
  }
  return *certificates_[candidates.front()];
}

const Certificate& CertificateSet::select(std::string_view server_name, ClientSignatures client) const {
  if (!server_name.empty()) {
    const std::string name(server_name);
    if (auto it = exact_.find(name); it != exact_.end()) return pick(it->second, client);
    const size_t dot = name.find('.');
    if (dot != std::string::npos) {
      if (auto it = wildcard_.find(name.substr(dot + 1)); it != wildcard_.end()) return pick(it->second, client);
    }
  }
  return pick(defaults_, client);
}

}  // namespace ringlb::tls
