// The maxconn queue (HAProxy's queue.c): clients that found every backend that is up at its
// max-connections wait here, in accept order, and go first come, first served as room appears.
// Pure: no io_uring; the worker says who may go and starts their connects.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

namespace ringlb::worker {

class AdmissionQueue {
 public:
  // Queues connection `id`, accepted at `accept_us` (the acceptor's clock, low 32 bits of
  // microseconds). Returns the ticket that names this entry; a connection that leaves the queue
  // another way (closed, timed out) keeps its entry until dispatch() skips it as stale.
  uint64_t push(uint32_t id, uint32_t accept_us);
  // A queued connection left without dispatch() (closed or timed out).
  void left();

  // Lets queued connections go, oldest first, while can_go(id) allows it: the first that cannot
  // go stops everyone behind it. current(id, ticket) tells a live entry from a stale one (the
  // connection left, or its slot now holds another client). go(id) is called after the entry is
  // removed, so it may queue the same connection again.
  template <typename Current, typename CanGo, typename Go>
  void dispatch(Current&& current, CanGo&& can_go, Go&& go) {
    while (!entries_.empty()) {
      const Entry e = entries_.front();
      if (!current(e.id, e.ticket)) {
        entries_.pop_front();
        continue;
      }
      if (!can_go(e.id)) return;
      entries_.pop_front();
      --size_;
      go(e.id);
    }
  }

  size_t size() const { return size_; }  // live entries
  size_t entries() const { return entries_.size(); }  // live and stale

 private:
  struct Entry {
    uint32_t id;
    uint32_t accept_us;
    uint64_t ticket;
  };
  std::deque<Entry> entries_;
  size_t size_ = 0;
  uint64_t next_ticket_ = 1;
};

}  // namespace ringlb::worker
