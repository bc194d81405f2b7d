// The TLVs of a PROXY protocol v2 header that carry a TLS client's identity, as HAProxy sends
// them (doc/proxy-protocol.txt, section 2.2): ALPN, the SNI as AUTHORITY, and an SSL TLV with the
// client flags, the verify result and sub-TLVs (version, client CN, cipher, the server
// certificate's signature and key algorithms), plus HAProxy's newest sub-TLV, the client
// certificate itself in DER. Pure: no sockets, no OpenSSL (server/tls fills them in).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ringlb {

inline constexpr uint8_t kPp2TypeAlpn = 0x01;
inline constexpr uint8_t kPp2TypeAuthority = 0x02;
inline constexpr uint8_t kPp2TypeSsl = 0x20;
inline constexpr uint8_t kPp2SubtypeSslVersion = 0x21;
inline constexpr uint8_t kPp2SubtypeSslCn = 0x22;
inline constexpr uint8_t kPp2SubtypeSslCipher = 0x23;
inline constexpr uint8_t kPp2SubtypeSslSigAlg = 0x24;
inline constexpr uint8_t kPp2SubtypeSslKeyAlg = 0x25;
inline constexpr uint8_t kPp2SubtypeSslClientCert = 0x28;

// PP2_TYPE_SSL's client field.
inline constexpr uint8_t kPp2ClientSsl = 0x01;       // the client connected over TLS
inline constexpr uint8_t kPp2ClientCertConn = 0x02;  // it sent a certificate on this connection
inline constexpr uint8_t kPp2ClientCertSess = 0x04;  // its session has one (this or a resumed connection)

// What a header says about the client's TLS. Empty strings are left out when written.
struct ProxyTlvs {
  std::string alpn;       // PP2_TYPE_ALPN: the negotiated protocol
  std::string authority;  // PP2_TYPE_AUTHORITY: the SNI the client sent
  bool ssl = false;       // PP2_TYPE_SSL is present, with:
  uint8_t ssl_client = 0;   // kPp2Client* flags
  uint32_t ssl_verify = 0;  // 0: the certificate verified, or none was sent (as HAProxy writes it)
  std::string ssl_version;  // "TLSv1.3"
  std::string ssl_cn;       // the client certificate's subject CN
  std::string ssl_cipher;   // "TLS_AES_256_GCM_SHA384"
  std::string ssl_sig_alg;  // the server certificate's signature algorithm, "ecdsa-with-SHA256"
  std::string ssl_key_alg;  // the server certificate's key, "EC256", "RSA2048"
  std::string ssl_client_cert;  // DER, only when asked for (it can be a few KiB)
  bool operator==(const ProxyTlvs&) const = default;
};

// Bytes encode_proxy_tlvs writes for `tlvs` (0 when there is nothing to write).
size_t proxy_tlvs_size(const ProxyTlvs& tlvs);

// Writes the TLVs into `out` and returns their length; 0 when `cap` is too small or one TLV's
// value is over 65535 bytes.
size_t encode_proxy_tlvs(const ProxyTlvs& tlvs, uint8_t* out, size_t cap);

// Reads a header's TLV block (what follows the addresses). False when a TLV (or a sub-TLV of
// PP2_TYPE_SSL) runs past its end, as HAProxy refuses such a header. Types other than the
// above are skipped. `out` may be null: the block is only checked.
bool decode_proxy_tlvs(const uint8_t* data, size_t len, ProxyTlvs* out);

}  // namespace ringlb
