// HMAC_Init_ex is deprecated in OpenSSL 3.0, and used on purpose: with the EVP_MAC callback,
// libssl itself fetches HMAC for every ticket (ssl_hmac_new) and the digest parameter fetches
// SHA-256 again; the HMAC_CTX callback with a pre-fetched EVP_MD fetches nothing.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "server/tls/ticket_keys.h"

#include <openssl/rand.h>

#include <cstring>
#include <ctime>
#include <sstream>

#include "server/tls/openssl.h"

namespace ringlb::tls {
namespace {

// Fetched once for the process and never freed: every worker's callback uses them without a
// lookup (an implicit fetch in EVP_EncryptInit_ex would take the method store's lock).
struct Algorithms {
  EVP_CIPHER* aes128 = EVP_CIPHER_fetch(nullptr, "AES-128-CBC", nullptr);
  EVP_CIPHER* aes256 = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
};

const Algorithms& algorithms() {
  static const Algorithms a;
  return a;
}

bool random_key(TicketKey* k) {
  k->aes_len = k->hmac_len = 32;
  return RAND_bytes(k->name, sizeof(k->name)) == 1 && RAND_bytes(k->aes, sizeof(k->aes)) == 1 &&
         RAND_bytes(k->hmac, sizeof(k->hmac)) == 1;
}

// One line of the file: base64 of name(16) + aes(16|32) + hmac(16|32).
bool decode_line(const std::string& line, TicketKey* k, std::string* why) {
  std::string decoded(line.size(), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                                reinterpret_cast<const unsigned char*>(line.data()), static_cast<int>(line.size()));
  if (n < 0 || line.size() % 4 != 0) {
    *why = "not base64";
    return false;
  }
  // EVP_DecodeBlock counts the padding as zero bytes.
  size_t len = static_cast<size_t>(n);
  for (size_t i = line.size(); i > 0 && line[i - 1] == '=' && len > 0; --i) --len;
  if (len != 48 && len != 80) {
    *why = "a key is 48 or 80 bytes (base64 of 16 bytes of name, then the AES and HMAC keys), not " +
           std::to_string(len);
    return false;
  }
  const size_t half = (len - 16) / 2;
  memcpy(k->name, decoded.data(), 16);
  memcpy(k->aes, decoded.data() + 16, half);
  memcpy(k->hmac, decoded.data() + 16 + half, half);
  k->aes_len = k->hmac_len = half;
  return true;
}

}  // namespace

int64_t TicketKeys::realtime() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec);
}

std::shared_ptr<TicketKeys> TicketKeys::generate(std::chrono::seconds period, Clock clock) {
  std::shared_ptr<TicketKeys> keys(new TicketKeys());
  keys->clock_ = clock;
  keys->period_ = period.count();
  (void)algorithms();  // fetched at start-up, not on the first handshake
  std::lock_guard<std::mutex> lock(keys->mu_);
  keys->rotate_locked(clock());
  return keys;
}

Status TicketKeys::load_file(const std::string& path, std::shared_ptr<TicketKeys>* out) {
  std::string text, why;
  if (!read_file(path, &text, &why)) return Status::error(path + ": " + why);
  std::shared_ptr<TicketKeys> keys(new TicketKeys());
  keys->file_ = path;
  (void)algorithms();
  std::vector<TicketKey> all;
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    TicketKey k;
    if (!decode_line(line, &k, &why)) return Status::error(path + ":" + std::to_string(number) + ": " + why);
    all.push_back(k);
  }
  if (all.empty()) return Status::error(path + ": no keys (one base64 line per key)");
  const size_t keep = std::min(all.size(), kKept);
  keys->keys_.assign(all.end() - static_cast<long>(keep), all.end());
  // The second to last encrypts: a key appended to every node's file is known to all of them
  // (after their reloads) before any encrypts with it.
  keys->encrypt_ = keep >= 2 ? keep - 2 : 0;
  *out = std::move(keys);
  return Status();
}

void TicketKeys::rotate_locked(int64_t now) const {
  TicketKey k;
  if (!random_key(&k)) return;  // the old key goes on encrypting; tried again next time
  keys_.push_back(k);
  if (keys_.size() > kKept) keys_.erase(keys_.begin());
  encrypt_ = keys_.size() - 1;
  next_rotation_.store(period_ > 0 ? now + period_ : 0, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
}

void TicketKeys::rotate() const {
  if (!file_.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  rotate_locked(clock_());
}

void TicketKeys::refresh(Ring* ring) const {
  const int64_t due = next_rotation_.load(std::memory_order_relaxed);
  if (due != 0) {
    const int64_t now = clock_();
    if (now >= due) {
      std::lock_guard<std::mutex> lock(mu_);
      if (now >= next_rotation_.load(std::memory_order_relaxed)) rotate_locked(now);
    }
  }
  if (ring->generation == generation_.load(std::memory_order_acquire)) return;
  std::lock_guard<std::mutex> lock(mu_);
  ring->keys = keys_;
  ring->encrypt = encrypt_;
  ring->generation = generation_.load(std::memory_order_relaxed);
}

int TicketKeys::ticket_callback(const Ring& ring, unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                                HMAC_CTX* hmac, int enc) {
  const Algorithms& a = algorithms();
  if (ring.keys.empty() || a.aes128 == nullptr || a.aes256 == nullptr || a.sha256 == nullptr) return -1;
  if (enc == 1) {
    const TicketKey& k = ring.keys[ring.encrypt];
    memcpy(name, k.name, sizeof(k.name));
    if (RAND_bytes(iv, 16) != 1) return -1;
    if (EVP_EncryptInit_ex(cipher, k.aes_len == 16 ? a.aes128 : a.aes256, nullptr, k.aes, iv) != 1 ||
        HMAC_Init_ex(hmac, k.hmac, static_cast<int>(k.hmac_len), a.sha256, nullptr) != 1) {
      return -1;
    }
    return 1;
  }
  for (size_t i = 0; i < ring.keys.size(); ++i) {
    const TicketKey& k = ring.keys[i];
    if (memcmp(name, k.name, sizeof(k.name)) != 0) continue;
    if (HMAC_Init_ex(hmac, k.hmac, static_cast<int>(k.hmac_len), a.sha256, nullptr) != 1 ||
        EVP_DecryptInit_ex(cipher, k.aes_len == 16 ? a.aes128 : a.aes256, nullptr, k.aes, iv) != 1) {
      return -1;
    }
    return i == ring.encrypt ? 1 : 2;
  }
  return 0;
}

}  // namespace ringlb::tls
