// RAII owners for the OpenSSL objects server/tls keeps, and OpenSSL's error queue as text.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <vector>

namespace ringlb::tls {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};

inline void free_x509_stack(STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); }

using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using X509StackPtr = std::unique_ptr<STACK_OF(X509), Deleter<STACK_OF(X509), free_x509_stack>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX, SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL, SSL_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;

// The oldest error on this thread's OpenSSL queue as "reason (library)" (or `fallback` when it
// is empty); the queue is cleared, so the next operation starts clean.
std::string openssl_error(const char* fallback = "unknown OpenSSL error");

// Reads a whole file (at most `limit` bytes). False and *why ("No such file or directory") when
// it cannot.
bool read_file(const std::string& path, std::string* out, std::string* why, size_t limit = 1u << 20);

// ALPN names in the wire format (each preceded by its length), as SSL_CTX_set_alpn_protos takes.
std::string alpn_wire(const std::vector<std::string>& names);

// A PEM file of CA certificates, read once: each worker's X509_STORE is filled from the text.
// False and *why ("No such file or directory", "no PEM certificate in it").
bool read_ca_file(const std::string& path, std::string* pem, std::string* why);
// A new X509_STORE with the certificates of `pem`, and (if `names` is not null) their subjects
// for the CertificateRequest's list of acceptable CAs.
X509_STORE* store_from_pem(const std::string& pem, STACK_OF(X509_NAME) * *names = nullptr);

}  // namespace ringlb::tls
