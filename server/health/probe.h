// One check's conversation with a backend after its connect, without I/O: the health checker
// asks next() what to do (send these bytes, receive into this buffer, or stop with a result),
// does it on its ring, and reports back with on_sent/on_received. TLS sits inside (TlsClient's
// memory BIOs), so the ring moves only ciphertext and the unit tests can drive a probe by hand.
// A udp check runs over a connected UDP socket: one datagram out, and each receive is one
// datagram back, judged whole.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "server/health/check_spec.h"
#include "server/health/reply.h"
#include "server/health/tls_client.h"

namespace ringlb::health {


class Probe {
 public:
  struct Step {
    enum Kind : uint8_t { kSend, kRecv, kDone } kind = kDone;
    const char* data = nullptr;  // kSend: these bytes
    char* buf = nullptr;         // kRecv: into this buffer
    size_t len = 0;              // kSend: bytes; kRecv: the buffer's room
    // kRecv only: the check has passed already and this waits for something worth having (a
    // TLS 1.3 session ticket, which comes after the handshake): give it a short time of its own
    // (kOptionalWaitMs, within the deadline); its timeout or failure does not fail the check.
    bool optional = false;
  };
  static constexpr uint32_t kOptionalWaitMs = 100;

  // A conversation for `spec` (kept by the caller until the probe ends): first `preamble` (a
  // send-proxy LOCAL header, or empty), then the handshake and the request. `host` is the
  // default Host header; `tls` is needed for tls and https checks.
  void start(const CheckSpec* spec, std::string preamble, const std::string& host, const TlsContext* tls);
  Step next();
  // The result of the last kSend/kRecv: bytes, 0 (EOF, for a recv), or -errno (-ECANCELED: the
  // check's deadline passed).
  void on_sent(int res);
  void on_received(int res);

  bool done() const { return phase_ == Phase::kDone; }
  Result result() const { return result_; }
  const std::string& reason() const { return reason_; }
  // What it was waiting for, for a timeout's reason ("connect", "TLS handshake", "reply").
  const char* waiting_for() const;
  // The last check's TLS handshake resumed the session of the one before (tls and https).
  bool resumed() const { return resumed_; }
  // The backend this probe checked is gone (its id may go to another): nothing of it is kept.
  void forget_backend() {
    session_.reset(nullptr);
    skip_ticket_waits_ = 0;
  }
  static constexpr uint32_t kTicketRetryEvery = 64;

 private:
  // kTicket: a tls check passed and waits a little for the session ticket (TLS 1.3).
  enum class Phase : uint8_t { kPreamble, kHandshake, kTicket, kRequest, kReply, kDone };
  void finish(Result r, std::string reason);
  void judge(bool eof);
  void on_error(int res, const char* op);

  const CheckSpec* spec_ = nullptr;
  const TlsContext* tls_ctx_ = nullptr;
  // Kept from check to check: the backend's session, resumed by the next handshake. Declared
  // before tls_, whose client points at it, so that it outlives it.
  TlsSession session_;
  std::unique_ptr<TlsClient> tls_;
  // Checks that skip the wait for a TLS 1.3 ticket: set when a wait ended without one (a server
  // without tickets is not waited for at every check), counted down, then a wait is tried again
  // (one slow ticket does not turn resumption off for good).
  uint32_t skip_ticket_waits_ = 0;
  bool resumed_ = false;
  Phase phase_ = Phase::kDone;
  std::string host_;
  std::string out_;       // bytes to send (ciphertext under TLS)
  size_t out_sent_ = 0;
  std::string reply_;     // the reply so far (plaintext), at most kMaxReplyWindow
  std::array<char, 4096> in_{};  // what a recv lands in
  Result result_ = Result::k_ok;
  std::string reason_;
};

}  // namespace ringlb::health
