// The ticket callback fetches no algorithm (OpenSSL 3.0's fetches take the method store's lock,
// shared by every thread: openssl#23388, haproxy#2454). This binary interposes the EVP_*_fetch
// functions to count the calls made while the flag is up; a control shows that the count does
// see an implicit fetch (a legacy EVP_aes_256_cbc() handed to EVP_EncryptInit_ex).
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>

#include "server/tls/ticket_keys.h"

namespace {
thread_local bool counting = false;
thread_local int fetches = 0;

template <typename F>
F next(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}
}  // namespace

extern "C" {
EVP_MD* EVP_MD_fetch(OSSL_LIB_CTX* ctx, const char* algorithm, const char* properties) {
  static auto real = next<EVP_MD* (*)(OSSL_LIB_CTX*, const char*, const char*)>("EVP_MD_fetch");
  if (counting) ++fetches;
  return real(ctx, algorithm, properties);
}
EVP_CIPHER* EVP_CIPHER_fetch(OSSL_LIB_CTX* ctx, const char* algorithm, const char* properties) {
  static auto real = next<EVP_CIPHER* (*)(OSSL_LIB_CTX*, const char*, const char*)>("EVP_CIPHER_fetch");
  if (counting) ++fetches;
  return real(ctx, algorithm, properties);
}
EVP_MAC* EVP_MAC_fetch(OSSL_LIB_CTX* ctx, const char* algorithm, const char* properties) {
  static auto real = next<EVP_MAC* (*)(OSSL_LIB_CTX*, const char*, const char*)>("EVP_MAC_fetch");
  if (counting) ++fetches;
  return real(ctx, algorithm, properties);
}
}

namespace ringlb::tls {
namespace {

TEST(NoFetch, TheTicketCallbackFetchesNothing) {
  auto keys = TicketKeys::generate();
  TicketKeys::Ring ring;
  keys->refresh(&ring);
  EVP_CIPHER_CTX* cipher = EVP_CIPHER_CTX_new();
  HMAC_CTX* hmac = HMAC_CTX_new();
  unsigned char name[16], iv[EVP_MAX_IV_LENGTH];

  // The control: an implicit fetch is seen.
  unsigned char key[32] = {};
  counting = true;
  fetches = 0;
  EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key, iv);
  counting = false;
  ASSERT_GT(fetches, 0) << "the interposer does not see libcrypto's own fetches: this test proves nothing";

  counting = true;
  fetches = 0;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(TicketKeys::ticket_callback(ring, name, iv, cipher, hmac, 1), 1);
    ASSERT_EQ(TicketKeys::ticket_callback(ring, name, iv, cipher, hmac, 0), 1);
  }
  keys->refresh(&ring);
  counting = false;
  EXPECT_EQ(fetches, 0) << "encrypting and decrypting 100 tickets fetched an algorithm";
  HMAC_CTX_free(hmac);
  EVP_CIPHER_CTX_free(cipher);
}

}  // namespace
}  // namespace ringlb::tls
