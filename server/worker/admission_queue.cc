#include "server/worker/admission_queue.h"

#include <iterator>

namespace ringlb::worker {

uint64_t AdmissionQueue::push(uint32_t id, uint32_t accept_us) {
  // In accept order, not arrival order: hand-offs that reach a ring together are installed last
  // first (observed: of two clients accepted moments apart, the second arrived first). The stamp
  // is the acceptor's loop time, so clients accepted in one batch tie and keep their arrival
  // order. Wrap-safe comparison of the 32-bit microsecond stamps.
  auto at = entries_.end();
  while (at != entries_.begin() && static_cast<int32_t>(std::prev(at)->accept_us - accept_us) > 0) {
    --at;
  }
  const uint64_t ticket = next_ticket_++;
  entries_.insert(at, Entry{id, accept_us, ticket});
  ++size_;
  return ticket;
}

void AdmissionQueue::left() {
  --size_;
  if (size_ == 0) entries_.clear();  // only entries of clients gone are left
}

}  // namespace ringlb::worker
