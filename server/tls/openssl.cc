#include "server/tls/openssl.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace ringlb::tls {

std::string openssl_error(const char* fallback) {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return fallback;
  const char* reason = ERR_reason_error_string(e);
  const char* lib = ERR_lib_error_string(e);
  std::string text = reason != nullptr ? reason : ("error " + std::to_string(ERR_GET_REASON(e)));
  if (lib != nullptr) text += std::string(" (") + lib + ")";
  return text;
}

bool read_file(const std::string& path, std::string* out, std::string* why, size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *why = strerror(errno);
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    *why = strerror(errno);
    return false;
  }
  *out = text.str();
  if (out->size() > limit) {
    *why = "larger than " + std::to_string(limit >> 10) + " KiB";
    return false;
  }
  return true;
}

std::string alpn_wire(const std::vector<std::string>& names) {
  std::string wire;
  for (const std::string& n : names) {
    wire += static_cast<char>(n.size());
    wire += n;
  }
  return wire;
}

bool read_ca_file(const std::string& path, std::string* pem, std::string* why) {
  if (!read_file(path, pem, why, 16u << 20)) return false;
  STACK_OF(X509_NAME)* names = nullptr;
  X509StorePtr store(store_from_pem(*pem, &names));
  const int count = names != nullptr ? sk_X509_NAME_num(names) : 0;
  sk_X509_NAME_pop_free(names, X509_NAME_free);
  if (count == 0) *why = "no PEM certificate in it";
  return count > 0;
}

X509_STORE* store_from_pem(const std::string& pem, STACK_OF(X509_NAME) * *names) {
  X509_STORE* store = X509_STORE_new();
  if (names != nullptr) *names = sk_X509_NAME_new_null();
  BioPtr in(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  STACK_OF(X509_INFO)* infos = PEM_X509_INFO_read_bio(in.get(), nullptr, nullptr, nullptr);
  for (int i = 0; infos != nullptr && i < sk_X509_INFO_num(infos); ++i) {
    X509_INFO* info = sk_X509_INFO_value(infos, i);
    if (info->x509 == nullptr) continue;
    X509_STORE_add_cert(store, info->x509);
    if (names != nullptr) sk_X509_NAME_push(*names, X509_NAME_dup(X509_get_subject_name(info->x509)));
  }
  sk_X509_INFO_pop_free(infos, X509_INFO_free);
  ERR_clear_error();
  return store;
}

}  // namespace ringlb::tls
