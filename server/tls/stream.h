// One TLS connection, server or client side, that does no I/O: the connection driver feeds it
// the ciphertext its recvs bring, reads the plaintext out, writes plaintext in, and sends the
// ciphertext it takes out. OpenSSL runs over a BIO of ringlb's own that reads the fed bytes in
// place and appends its output to a buffer here, so nothing blocks and nothing waits on a socket.
//
// The contract that bounds memory (a slow reader must not make ringlb buffer without limit):
//  - Input: feed() one recv buffer, then read() until it returns kWant. The buffer is read in
//    place and must stay valid until unread_input() is 0, or until release_input() copies what
//    is left (at most one buffer). While the plaintext's destination is full, stop reading and
//    stop feeding: the next recv waits, and TCP's window pushes back on the peer.
//  - Output: write() takes plaintext only while pending_output() is under output_limit(), and
//    encrypts at most that much, so pending_output() stays under the limit plus a record's
//    overhead per record. Send what take_output() (or output()) gives, then write again.
//  - Handshake and post-handshake messages (tickets, key updates, alerts) add small amounts:
//    send the output after every call (a TLS 1.3 server's ticket follows its handshake).
//
// Half-close: a close_notify from the peer reads as kEof (send a FIN on); shutdown_write() sends
// close_notify (after a FIN from the other side), and reading goes on until the peer's own.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "server/protocol/proxy_tlvs.h"
#include "server/tls/client_context.h"
#include "server/tls/notes.h"
#include "server/tls/server_context.h"

namespace ringlb::tls {

// Why a handshake failed: the close reason (and metric label) of its connection.
enum class Failure : uint8_t {
  kNone,
  kHandshakeTimeout,  // the caller's timer (timed_out())
  kNoCertificate,     // the client sent none where one is required (or the peer wanted ours)
  kBadCertificate,    // the peer's certificate failed verification (chain, name, expiry)
  kProtocol,          // anything else: not TLS, truncated, no common version, cipher or group
};
// "tls_handshake_timeout", "tls_no_certificate", "tls_bad_certificate", "tls_protocol" ("" for kNone).
const char* failure_name(Failure f);

struct ClientOptions {
  uint32_t backend = 0;       // whose session to resume and keep
  // The name the backend's certificate must hold when the cluster verifies (its sni if it has
  // one, else the backend's DNS name or IP address, which the caller passes here).
  std::string verify_name;
};

class Stream {
 public:
  enum class Handshake { kWant, kDone, kFailed };
  // read() and write() results besides a byte count.
  static constexpr ssize_t kWant = 0;    // nothing now: feed more (read) / drain output (write)
  static constexpr ssize_t kEof = -1;    // the peer's close_notify (or a FIN after the handshake)
  static constexpr ssize_t kError = -2;  // the connection is broken: close it

  // A client's connection to a terminating listener, with this worker's context.
  explicit Stream(std::shared_ptr<const ServerContext> context);
  // A connection to a backend of a TLS cluster, with this worker's context.
  Stream(std::shared_ptr<ClientContext> context, const ClientOptions& options);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  bool ok() const { return ssl_ != nullptr; }  // false: out of memory, close

  // Ciphertext from the peer, read in place (see the contract above).
  void feed(const uint8_t* data, size_t len);
  size_t unread_input() const { return view_len_ + (spill_.size() - spill_pos_); }
  void release_input();
  // The peer's FIN. Before the handshake ends: a truncated handshake (kProtocol).
  void feed_eof();

  // Runs the handshake as far as the input allows. kWant: send the output, feed more.
  Handshake handshake();
  // The caller's handshake timer fired: records kHandshakeTimeout.
  void timed_out();
  bool handshake_done() const { return done_; }
  Failure failure() const { return failure_; }
  const std::string& error() const { return error_; }  // OpenSSL's reason, for the log

  // Plaintext out of the fed ciphertext: bytes, kWant, kEof or kError. Before the handshake is
  // done it runs the handshake (kWant until then).
  ssize_t read(void* dst, size_t cap);
  // Plaintext in: the bytes taken (0 until the handshake is done, and while pending_output()
  // is at the limit), or kError.
  ssize_t write(const void* src, size_t len);
  // The write side's end: sends close_notify once (when the handshake is done, if it is not
  // yet). Writing after it is an error.
  void shutdown_write();
  bool eof_received() const { return eof_; }
  bool truncated() const { return truncated_; }  // EOF came as a FIN without close_notify

  size_t pending_output() const { return out_.size() - out_pos_; }
  size_t take_output(void* dst, size_t cap);
  std::span<const uint8_t> output() const { return {out_.data() + out_pos_, pending_output()}; }
  void consume_output(size_t n);
  size_t output_limit() const { return output_limit_; }
  void set_output_limit(size_t n) { output_limit_ = n; }
  static constexpr size_t kDefaultOutputLimit = 64 * 1024;

  // After the handshake (for the access log and the PROXY v2 TLVs).
  const char* version() const;  // "TLSv1.3"
  const char* cipher() const;   // "TLS_AES_256_GCM_SHA384"
  std::string_view alpn() const;
  const std::string& server_name() const { return notes_.server_name; }  // the SNI
  bool resumed() const;
  const Certificate* certificate() const { return notes_.certificate; }  // the one served
  bool peer_certificate() const;      // the peer has one (this handshake's or the session's)
  std::string peer_cn() const;        // its subject CN
  std::string peer_der() const;       // it, DER
  long verify_result() const;         // X509_V_OK, or why verification failed
  // The TLVs HAProxy sends for this client; its certificate (DER) too when `with_certificate`.
  ProxyTlvs proxy_tlvs(bool with_certificate) const;

  SSL* ssl() const { return ssl_.get(); }  // for tests and diagnostics

 private:
  friend struct StreamBio;
  void fail(int ret);
  void finish_handshake();
  size_t read_input(uint8_t* dst, size_t cap);

  std::shared_ptr<const ServerContext> server_;
  std::shared_ptr<ClientContext> client_;
  HandshakeNotes notes_;
  SslPtr ssl_;
  // Input: the last feed() (not copied), after what release_input() copied.
  const uint8_t* view_ = nullptr;
  size_t view_len_ = 0;
  std::string spill_;
  size_t spill_pos_ = 0;
  bool input_eof_ = false;
  // Output not yet taken.
  std::vector<uint8_t> out_;
  size_t out_pos_ = 0;
  size_t output_limit_ = kDefaultOutputLimit;
  bool done_ = false;
  bool eof_ = false;
  bool truncated_ = false;
  bool shut_write_ = false;
  Failure failure_ = Failure::kNone;
  std::string error_;
};

}  // namespace ringlb::tls
