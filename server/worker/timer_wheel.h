// A hashed timing wheel for the worker's per-connection deadlines (idle, fin, queue, drain, max
// duration): the tick then costs what is due, not what is allocated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ringlb::worker {

// One timer per id (a connection index, 0 <= id < capacity). Hashed timing wheel: schedule and
// cancel are O(1); advance() visits only the slots whose time has come.
//
// Tick k of the wheel's timeline (slot k & (slots-1)) holds deadlines in ((k-1)*res, k*res]: a
// deadline is rounded up to a slot boundary to pick its slot, and advance() still compares the
// exact deadline, so a timer fires at the first advance() whose now_ns reaches its deadline: never
// early, never a slot late. Not thread-safe (one per worker); fire must not throw.
class TimerWheel {
 public:
  // resolution_ns: the width of one slot (deadlines are rounded UP to a slot boundary, so a timer
  // never fires early); slots: a power of two. Timers further away than slots*resolution wait in
  // their slot for later revolutions (each stores its exact deadline), costing one look per
  // revolution.
  TimerWheel(uint32_t capacity, uint64_t resolution_ns, uint32_t slots, uint64_t now_ns);
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // Arms id's timer for deadline_ns, replacing any timer it had. A deadline in the past fires at
  // the next advance().
  void schedule(uint32_t id, uint64_t deadline_ns);
  void cancel(uint32_t id);  // no-op when not scheduled
  bool scheduled(uint32_t id) const { return list_[id] != kNone; }
  uint64_t deadline(uint32_t id) const { return deadline_[id]; }  // valid while scheduled
  size_t size() const { return size_; }  // timers armed

  // Fires (calls fire(id)) every timer whose deadline <= now_ns, each once, removing it first,
  // so fire may schedule() the same id again (a later deadline) or schedule/cancel any other id
  // safely. Returns the number fired.
  template <typename Fire> size_t advance(uint64_t now_ns, Fire&& fire);

  // The earliest time at which advance() could fire something (for sizing the loop's timeout);
  // UINT64_MAX when empty. May be conservative (earlier than the true earliest deadline).
  uint64_t next_expiry_hint() const;

 private:
  static constexpr uint32_t kNone = UINT32_MAX;

  // Absolute slot number ("tick") whose boundary is the deadline rounded up.
  uint64_t tick_of(uint64_t deadline_ns) const {
    return deadline_ns / resolution_ns_ + (deadline_ns % resolution_ns_ != 0 ? 1 : 0);
  }
  void push(uint32_t list, uint32_t id);  // front of list; sets list_[id]
  void unlink(uint32_t id);               // from the list holding it; list_[id] left as it was
  void remove(uint32_t id);               // unlink, keeping slot_min_ of an emptied slot exact
  template <typename Fire> size_t walk_slot(uint32_t slot, uint64_t now_ns, Fire& fire);
  void release_deferred();  // into the cursor's slot, due at the next advance()

  const uint64_t resolution_ns_;
  const uint32_t mask_;  // slots - 1
  // Lists are heads_[0..slots): the wheel; heads_[walk_list_]: a slot detached while advance()
  // walks it, so fire() can cancel entries still in it and anything scheduled into that slot
  // lands in the slot's fresh list, not in the walk; heads_[deferred_list_]: timers scheduled
  // during advance() with deadlines already due, held back so they fire at the next advance()
  // (not twice in this one, and never behind the cursor).
  const uint32_t walk_list_;
  const uint32_t deferred_list_;
  std::vector<uint32_t> heads_;
  // A lower bound on the deadlines in each wheel slot (UINT64_MAX when empty), for
  // next_expiry_hint(): lowered on insert, made exact when advance() walks the slot, left as is
  // by cancel (so it can be early, never late).
  std::vector<uint64_t> slot_min_;
  // Per id: the intrusive doubly linked list links, the exact deadline, and the list holding it.
  std::vector<uint32_t> next_;
  std::vector<uint32_t> prev_;
  std::vector<uint64_t> deadline_;
  std::vector<uint32_t> list_;  // kNone: not scheduled
  size_t size_ = 0;
  // The first tick advance() has not finished with: its slot may still hold timers due later in
  // that tick. Every armed timer not yet due lives at a tick >= cursor_tick_.
  uint64_t cursor_tick_;
  bool advancing_ = false;  // with advance_now_ns_: schedule() defers timers already due
  uint64_t advance_now_ns_ = 0;
  // next_expiry_hint()'s last answer, kept while it stays a lower bound (schedule lowers it,
  // cancel and fire only raise the true earliest) and still in the future: its walk can cover a
  // revolution when the nearest deadline is far, and the loop asks on every iteration.
  mutable uint64_t hint_ns_ = UINT64_MAX;
  mutable bool hint_valid_ = true;
};

inline void TimerWheel::push(uint32_t list, uint32_t id) {
  const uint32_t head = heads_[list];
  next_[id] = head;
  prev_[id] = kNone;
  if (head != kNone) prev_[head] = id;
  heads_[list] = id;
  list_[id] = list;
}

inline void TimerWheel::unlink(uint32_t id) {
  const uint32_t next = next_[id];
  const uint32_t prev = prev_[id];
  if (prev != kNone) {
    next_[prev] = next;
  } else {
    // Only a head's list_ is read (here), so a slot detached for a walk relabels just its head,
    // and the label moves on with each new head.
    heads_[list_[id]] = next;
    if (next != kNone) list_[next] = list_[id];
  }
  if (next != kNone) prev_[next] = prev;
}

template <typename Fire>
size_t TimerWheel::walk_slot(uint32_t slot, uint64_t now_ns, Fire& fire) {
  const uint32_t first = heads_[slot];
  heads_[slot] = kNone;
  slot_min_[slot] = UINT64_MAX;
  heads_[walk_list_] = first;
  list_[first] = walk_list_;
  size_t fired = 0;
  // Always take the walk list's head: fire() may cancel or re-arm any entry still in it.
  for (uint32_t id = first; id != kNone; id = heads_[walk_list_]) {
    unlink(id);
    if (deadline_[id] <= now_ns) {
      list_[id] = kNone;
      --size_;
      ++fired;
      fire(id);
    } else {
      push(slot, id);  // due in a later revolution of this slot
      if (deadline_[id] < slot_min_[slot]) slot_min_[slot] = deadline_[id];
    }
  }
  return fired;
}

template <typename Fire>
size_t TimerWheel::advance(uint64_t now_ns, Fire&& fire) {
  // The last tick to visit is the one whose slot holds now_ns (deadlines up to its end, some of
  // which may be due); it stays the cursor, to be finished by a later advance(). A clock that
  // did not move on revisits the cursor's slot only.
  uint64_t last = tick_of(now_ns);
  if (last < cursor_tick_) last = cursor_tick_;
  uint64_t first = cursor_tick_;
  // More than a revolution passed: every slot once is enough, since deadlines are compared
  // exactly and each slot holds all its revolutions.
  if (last - first > mask_) first = last - mask_;
  cursor_tick_ = last;
  advancing_ = true;
  advance_now_ns_ = now_ns;
  size_t fired = 0;
  for (uint64_t tick = first; tick <= last; ++tick) {
    const uint32_t slot = static_cast<uint32_t>(tick & mask_);
    if (heads_[slot] != kNone) fired += walk_slot(slot, now_ns, fire);
  }
  advancing_ = false;
  release_deferred();
  if (hint_ns_ <= now_ns) hint_valid_ = false;  // passed: would have the loop spin
  return fired;
}

}  // namespace ringlb::worker
