#include "tests/tls/test_pki.h"

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <map>
#include <mutex>
#include <stdexcept>

namespace ringlb::tls::pki {
namespace {

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) throw std::runtime_error("extension " + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

}  // namespace

EvpPkeyPtr make_key(KeyType type, int index) {
  // RSA-2048 takes a while to make: each key once per process (freed at exit).
  static std::mutex mu;
  static std::map<std::pair<KeyType, int>, EvpPkeyPtr> keys;
  std::lock_guard<std::mutex> lock(mu);
  EvpPkeyPtr& key = keys[{type, index}];
  if (!key) {
    key.reset(type == KeyType::kRsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256"));
    if (!key) throw std::runtime_error("key generation failed");
  }
  EVP_PKEY_up_ref(key.get());
  return EvpPkeyPtr(key.get());
}

Issued issue(const Spec& spec, const Issued* issuer) {
  Issued out;
  out.key = make_key(spec.key, spec.key_index);
  out.cert.reset(X509_new());
  X509* x = out.cert.get();
  X509_set_version(x, 2);
  unsigned char serial[8];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7F;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(x), static_cast<long>(spec.not_before));
  X509_gmtime_adj(X509_getm_notAfter(x), static_cast<long>(spec.not_after));
  X509_set_pubkey(x, out.key.get());
  X509_NAME* name = X509_get_subject_name(x);
  if (!spec.cn.empty()) {
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1,
                               -1, 0);
  }
  X509* signer = issuer != nullptr ? issuer->cert.get() : x;
  X509_set_issuer_name(x, X509_get_subject_name(signer));
  if (spec.ca) {
    add_ext(x, signer, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(x, signer, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(x, signer, NID_ext_key_usage, spec.client ? "clientAuth" : "serverAuth");
  }
  add_ext(x, signer, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) add_ext(x, signer, NID_authority_key_identifier, "keyid:always");
  std::string sans;
  for (const std::string& d : spec.dns) sans += (sans.empty() ? "DNS:" : ",DNS:") + d;
  for (const std::string& ip : spec.ips) sans += (sans.empty() ? "IP:" : ",IP:") + ip;
  if (!sans.empty()) add_ext(x, signer, NID_subject_alt_name, sans);
  EVP_PKEY* signing_key = issuer != nullptr ? issuer->key.get() : out.key.get();
  if (X509_sign(x, signing_key, EVP_sha256()) == 0) throw std::runtime_error("X509_sign failed");
  return out;
}

std::string pem(X509* cert) {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), cert);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string pem(EVP_PKEY* key) {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(b.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string write_certs(const std::string& dir, const std::string& name, const std::vector<X509*>& certs) {
  std::string text;
  for (X509* c : certs) text += pem(c);
  const std::string path = dir + "/" + name;
  write_text(path, text);
  return path;
}

TlsCertificateFiles write_pair(const std::string& dir, const std::string& name, const Issued& leaf,
                               const std::vector<X509*>& chain) {
  std::vector<X509*> certs{leaf.cert.get()};
  certs.insert(certs.end(), chain.begin(), chain.end());
  TlsCertificateFiles files;
  files.cert = write_certs(dir, name + ".crt", certs);
  files.key = dir + "/" + name + ".key";
  write_text(files.key, pem(leaf.key.get()));
  return files;
}

StandardPki::StandardPki(const std::string& d) : dir(d) {
  static const Issued ca = issue({.cn = "ringlb test CA", .key = KeyType::kRsa, .key_index = 9, .ca = true});
  static const Issued other_ca = issue({.cn = "another CA", .key_index = 9, .ca = true});
  static const Issued www_rsa_cert =
      issue({.cn = "www.example.com", .dns = {"www.example.com", "example.com"}, .key = KeyType::kRsa}, &ca);
  static const Issued www_ec_cert = issue({.cn = "www.example.com", .dns = {"www.example.com", "example.com"}}, &ca);
  static const Issued wildcard_cert = issue({.cn = "*.example.org", .dns = {"*.example.org"}, .key_index = 1}, &ca);
  static const Issued client_cert = issue({.cn = "alice", .key_index = 2, .client = true}, &ca);
  static const Issued other_client_cert = issue({.cn = "mallory", .key_index = 3, .client = true}, &other_ca);
  ca_file = write_certs(dir, "ca.pem", {ca.cert.get()});
  other_ca_file = write_certs(dir, "other-ca.pem", {other_ca.cert.get()});
  www_rsa = write_pair(dir, "www-rsa", www_rsa_cert);
  www_ec = write_pair(dir, "www-ec", www_ec_cert);
  wildcard = write_pair(dir, "wildcard", wildcard_cert);
  client = write_pair(dir, "client", client_cert);
  other_client = write_pair(dir, "other-client", other_client_cert);
}

}  // namespace ringlb::tls::pki
