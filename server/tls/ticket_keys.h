// Session ticket keys shared by every worker of a listener (so a client resumes on whichever
// worker takes its next connection), rotated: generated ones every 12 hours, the newest
// encrypting and the 2 before it still decrypting; or read from HAProxy's tls-ticket-keys file
// (base64 lines of 48 or 80 bytes: name, AES key, HMAC key), shared by a fleet, where the last 3
// decrypt and the second to last encrypts.
//
// The ticket callback runs on every handshake, on every worker, so it takes no lock and fetches
// no algorithm: each worker keeps a Ring (its own copy of the keys) and refreshes it when the
// shared generation moves; AES-CBC and SHA-256 are fetched once per process (OpenSSL 3.0's
// fetches take global locks: openssl#23388, haproxy#2454).
#pragma once

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "server/base/error.h"

namespace ringlb::tls {

struct TicketKey {
  uint8_t name[16];
  uint8_t aes[32];
  uint8_t hmac[32];
  size_t aes_len = 32;   // 16: AES-128-CBC, 32: AES-256-CBC
  size_t hmac_len = 32;  // the HMAC-SHA-256 key's bytes (as long as the AES key, as HAProxy's)
};

class TicketKeys {
 public:
  using Clock = int64_t (*)();  // Unix seconds
  static int64_t realtime();

  // Keys made here, a new one every `period` (as Clock tells). The newest encrypts.
  static std::shared_ptr<TicketKeys> generate(std::chrono::seconds period = std::chrono::hours(12),
                                              Clock clock = realtime);
  // HAProxy's format; blank lines and lines starting with '#' are skipped. Errors are
  // "FILE: reason" or "FILE:LINE: reason". No rotation: the fleet rewrites the file and reloads.
  static Status load_file(const std::string& path, std::shared_ptr<TicketKeys>* out);

  const std::string& file() const { return file_; }  // empty for generated keys
  static constexpr size_t kKept = 3;                 // keys that decrypt

  // One worker's copy of the keys. Only that worker touches it.
  struct Ring {
    uint64_t generation = 0;
    std::vector<TicketKey> keys;  // oldest first
    size_t encrypt = 0;           // index into keys
  };
  // Rotates when due (generated keys), then brings *ring up to date. Lock-free unless either
  // happens.
  void refresh(Ring* ring) const;
  // A new key now (generated keys only): the oldest of kKept stops decrypting.
  void rotate() const;
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // The body of OpenSSL's ticket key callback (SSL_CTX_set_tlsext_ticket_key_cb) for one
  // worker's ring: 1 encrypted / decrypted with the current key, 2 decrypted with an older key
  // (the client gets a new ticket), 0 unknown key (a full handshake), -1 error.
  static int ticket_callback(const Ring& ring, unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                             HMAC_CTX* hmac, int enc);

 private:
  TicketKeys() = default;
  void rotate_locked(int64_t now) const;

  std::string file_;
  Clock clock_ = realtime;
  int64_t period_ = 0;  // seconds; 0: never rotated
  mutable std::mutex mu_;
  mutable std::vector<TicketKey> keys_;  // oldest first, at most kKept
  mutable size_t encrypt_ = 0;
  mutable std::atomic<uint64_t> generation_{1};
  mutable std::atomic<int64_t> next_rotation_{0};  // 0: none
};

}  // namespace ringlb::tls
