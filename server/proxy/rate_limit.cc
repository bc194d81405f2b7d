#include "server/proxy/rate_limit.h"

namespace ringlb::proxy {
namespace {

constexpr uint64_t kNsPerSec = 1'000'000'000ULL;

}  // namespace

void TokenBucket::start(uint64_t rate, uint64_t burst, uint64_t now_ns) {
  rate_ = rate;
  burst_ = burst > 0 ? burst : 1;
  tokens_ = static_cast<int64_t>(burst_);
  stamp_ns_ = now_ns;
}

uint64_t TokenBucket::available(uint64_t now_ns) {
  if (tokens_ >= static_cast<int64_t>(burst_) || now_ns <= stamp_ns_) {
    if (tokens_ >= static_cast<int64_t>(burst_)) stamp_ns_ = now_ns;  // full: nothing accrues
    return tokens_ > 0 ? static_cast<uint64_t>(tokens_) : 0;
  }
  // 128 bits: an hour of nanoseconds times a rate of a GiB/s overflows 64.
  const unsigned __int128 gained = static_cast<unsigned __int128>(now_ns - stamp_ns_) * rate_ / kNsPerSec;
  const unsigned __int128 room = static_cast<unsigned __int128>(static_cast<int64_t>(burst_) - tokens_);
  if (gained >= room) {
    tokens_ = static_cast<int64_t>(burst_);
    stamp_ns_ = now_ns;
  } else if (gained > 0) {
    tokens_ += static_cast<int64_t>(gained);
    // Only the time those whole tokens took: the fraction of the next one is kept.
    stamp_ns_ += static_cast<uint64_t>(gained * kNsPerSec / rate_);
  }
  return tokens_ > 0 ? static_cast<uint64_t>(tokens_) : 0;
}

uint64_t TokenBucket::ready_at(uint64_t need, uint64_t now_ns) const {
  if (tokens_ >= static_cast<int64_t>(need)) return now_ns;
  const unsigned __int128 missing = static_cast<unsigned __int128>(static_cast<int64_t>(need) - tokens_);
  // Rounded up: never woken before the tokens are there.
  const uint64_t wait = static_cast<uint64_t>((missing * kNsPerSec + rate_ - 1) / rate_);
  const uint64_t at = stamp_ns_ + wait;
  return at > now_ns ? at : now_ns;
}

uint64_t TokenBucket::quantum() const {
  uint64_t q = rate_ / 20;
  if (q > burst_) q = burst_;
  return q > 0 ? q : 1;
}

}  // namespace ringlb::proxy
