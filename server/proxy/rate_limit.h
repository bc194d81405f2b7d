// Bandwidth limits (download-rate, upload-rate): a token bucket per direction of a session, in
// bytes. Pure, so the arithmetic is unit-tested without a ring; the pump (pump.cc) holds a
// direction's next recv until its bucket has a quantum, sizes the recv to what the bucket holds,
// and the driver's timer (deadlines.h: the session's wake-up) lets the recv go when it is due.
// Nothing is buffered beyond what the pump holds anyway: a held recv leaves the bytes in the
// socket, and TCP's flow control slows the sender.
#pragma once

#include <cstdint>

namespace ringlb::proxy {

// Refilled at `rate` bytes per second up to `burst` (one buffer: a recv takes at most that).
class TokenBucket {
 public:
  // Full at `now_ns`. A rate of 0 means unlimited: the bucket is never consulted.
  void start(uint64_t rate, uint64_t burst, uint64_t now_ns);
  bool limited() const { return rate_ != 0; }
  uint64_t rate() const { return rate_; }
  // Tokens at `now_ns` (refilled first); 0 while in debt.
  uint64_t available(uint64_t now_ns);
  // `bytes` went through; more than the bucket held (it should not happen: recvs are sized to
  // it) is a debt, paid back before the next recv.
  void take(uint64_t bytes) { tokens_ -= static_cast<int64_t>(bytes); }
  // When the bucket holds `need` tokens (now_ns if it does already), as of its last refill.
  uint64_t ready_at(uint64_t need, uint64_t now_ns) const;
  // What a held recv waits for: enough tokens that a limited flow wakes about 20 times a second
  // at most (rate / 20), but never more than the burst, and at least a byte.
  uint64_t quantum() const;

 private:
  uint64_t rate_ = 0;   // bytes per second; 0: unlimited
  uint64_t burst_ = 0;  // tokens at most
  int64_t tokens_ = 0;  // negative: a debt
  uint64_t stamp_ns_ = 0;  // tokens_ is as of this time (the fraction of a token since is kept)
};

// One direction's limit: its bucket, and whether its next recv is held (and since when, for
// ringlb_rate_limited_seconds_total).
struct RateLimit {
  TokenBucket bucket;
  uint64_t held_since_ns = 0;
  uint64_t held_until_ns = 0;  // when the held recv may go (the session's timer wakes it); 0: not held

  bool held() const { return held_until_ns != 0; }
};

// The rate that applies where a listener and a cluster each may set one (0: none): the lower.
inline uint64_t combined_rate(uint64_t a, uint64_t b) {
  if (a == 0) return b;
  if (b == 0) return a;
  return a < b ? a : b;
}

}  // namespace ringlb::proxy
