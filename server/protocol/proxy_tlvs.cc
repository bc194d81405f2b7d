#include "server/protocol/proxy_tlvs.h"

#include <array>
#include <cstring>
#include <utility>

namespace ringlb {
namespace {

constexpr size_t kTlvHeader = 3;        // type, length (16 bits, big-endian)
constexpr size_t kSslFixed = 1 + 4;     // client, verify
constexpr size_t kMaxValue = 0xFFFF;

struct Sub {
  uint8_t type;
  const std::string* value;
};

// The SSL TLV's sub-TLVs, in the order HAProxy writes them (version, CN, key, sig, cipher),
// and the client certificate last.
std::array<Sub, 6> ssl_subs(const ProxyTlvs& t) {
  return {{{kPp2SubtypeSslVersion, &t.ssl_version},
           {kPp2SubtypeSslCn, &t.ssl_cn},
           {kPp2SubtypeSslKeyAlg, &t.ssl_key_alg},
           {kPp2SubtypeSslSigAlg, &t.ssl_sig_alg},
           {kPp2SubtypeSslCipher, &t.ssl_cipher},
           {kPp2SubtypeSslClientCert, &t.ssl_client_cert}}};
}

std::string* ssl_field(ProxyTlvs* t, uint8_t sub) {
  switch (sub) {
    case kPp2SubtypeSslVersion: return &t->ssl_version;
    case kPp2SubtypeSslCn: return &t->ssl_cn;
    case kPp2SubtypeSslKeyAlg: return &t->ssl_key_alg;
    case kPp2SubtypeSslSigAlg: return &t->ssl_sig_alg;
    case kPp2SubtypeSslCipher: return &t->ssl_cipher;
    case kPp2SubtypeSslClientCert: return &t->ssl_client_cert;
    default: return nullptr;  // GROUP, SIG_SCHEME, ...: not sent by ringlb
  }
}

size_t ssl_value_size(const ProxyTlvs& t) {
  size_t n = kSslFixed;
  for (const Sub& s : ssl_subs(t)) {
    if (!s.value->empty()) n += kTlvHeader + s.value->size();
  }
  return n;
}

uint8_t* put_header(uint8_t* p, uint8_t type, size_t len) {
  p[0] = type;
  p[1] = static_cast<uint8_t>(len >> 8);
  p[2] = static_cast<uint8_t>(len & 0xFF);
  return p + kTlvHeader;
}

uint8_t* put(uint8_t* p, uint8_t type, const std::string& value) {
  p = put_header(p, type, value.size());
  memcpy(p, value.data(), value.size());
  return p + value.size();
}

// Walks TLVs in [data, data + len), calling f(type, value, value_len) for each; false if one
// runs past the end.
template <typename F>
bool walk(const uint8_t* data, size_t len, F&& f) {
  size_t at = 0;
  while (at < len) {
    if (len - at < kTlvHeader) return false;
    const size_t value_len = (size_t{data[at + 1]} << 8) | data[at + 2];
    if (len - at - kTlvHeader < value_len) return false;
    if (!f(data[at], data + at + kTlvHeader, value_len)) return false;
    at += kTlvHeader + value_len;
  }
  return true;
}

}  // namespace

size_t proxy_tlvs_size(const ProxyTlvs& t) {
  size_t n = 0;
  if (!t.alpn.empty()) n += kTlvHeader + t.alpn.size();
  if (!t.authority.empty()) n += kTlvHeader + t.authority.size();
  if (t.ssl) n += kTlvHeader + ssl_value_size(t);
  return n;
}

size_t encode_proxy_tlvs(const ProxyTlvs& t, uint8_t* out, size_t cap) {
  const size_t total = proxy_tlvs_size(t);
  if (total > cap || t.alpn.size() > kMaxValue || t.authority.size() > kMaxValue ||
      (t.ssl && ssl_value_size(t) > kMaxValue)) {
    return 0;
  }
  uint8_t* p = out;
  if (!t.alpn.empty()) p = put(p, kPp2TypeAlpn, t.alpn);
  if (!t.authority.empty()) p = put(p, kPp2TypeAuthority, t.authority);
  if (t.ssl) {
    p = put_header(p, kPp2TypeSsl, ssl_value_size(t));
    p[0] = t.ssl_client;
    p[1] = static_cast<uint8_t>(t.ssl_verify >> 24);
    p[2] = static_cast<uint8_t>(t.ssl_verify >> 16);
    p[3] = static_cast<uint8_t>(t.ssl_verify >> 8);
    p[4] = static_cast<uint8_t>(t.ssl_verify);
    p += kSslFixed;
    for (const Sub& s : ssl_subs(t)) {
      if (!s.value->empty()) p = put(p, s.type, *s.value);
    }
  }
  return static_cast<size_t>(p - out);
}

bool decode_proxy_tlvs(const uint8_t* data, size_t len, ProxyTlvs* out) {
  ProxyTlvs t;
  const auto text = [](const uint8_t* v, size_t n) { return std::string(reinterpret_cast<const char*>(v), n); };
  const bool ok = walk(data, len, [&](uint8_t type, const uint8_t* v, size_t n) {
    switch (type) {
      case kPp2TypeAlpn: t.alpn = text(v, n); return true;
      case kPp2TypeAuthority: t.authority = text(v, n); return true;
      case kPp2TypeSsl: break;
      default: return true;  // CRC32C, NOOP, UNIQUE_ID, NETNS, custom: not ours to read
    }
    if (n < kSslFixed) return false;
    t.ssl = true;
    t.ssl_client = v[0];
    t.ssl_verify = (uint32_t{v[1]} << 24) | (uint32_t{v[2]} << 16) | (uint32_t{v[3]} << 8) | v[4];
    return walk(v + kSslFixed, n - kSslFixed, [&](uint8_t sub, const uint8_t* sv, size_t sn) {
      if (std::string* field = ssl_field(&t, sub)) *field = text(sv, sn);
      return true;
    });
  });
  if (ok && out != nullptr) *out = std::move(t);
  return ok;
}

}  // namespace ringlb
