#include "server/worker/timer_wheel.h"

#include <cassert>

namespace ringlb::worker {

TimerWheel::TimerWheel(uint32_t capacity, uint64_t resolution_ns, uint32_t slots, uint64_t now_ns)
    : resolution_ns_(resolution_ns),
      mask_(slots - 1),
      walk_list_(slots),
      deferred_list_(slots + 1),
      heads_(static_cast<size_t>(slots) + 2, kNone),
      slot_min_(slots, UINT64_MAX),
      next_(capacity, kNone),
      prev_(capacity, kNone),
      deadline_(capacity, 0),
      list_(capacity, kNone),
      cursor_tick_(0) {
  assert(resolution_ns > 0);
  assert(slots > 0 && (slots & (slots - 1)) == 0);
  assert(capacity < kNone);
  cursor_tick_ = tick_of(now_ns);
}

void TimerWheel::schedule(uint32_t id, uint64_t deadline_ns) {
  if (list_[id] != kNone) {
    remove(id);
  } else {
    ++size_;
  }
  deadline_[id] = deadline_ns;
  if (size_ == 1) {  // was empty
    hint_ns_ = deadline_ns;
    hint_valid_ = true;
  } else if (deadline_ns < hint_ns_) {
    hint_ns_ = deadline_ns;
  }
  if (advancing_ && deadline_ns <= advance_now_ns_) {
    push(deferred_list_, id);
    return;
  }
  // A deadline already past (or in the cursor's tick) goes to the cursor's slot, which the next
  // advance() visits first.
  uint64_t tick = tick_of(deadline_ns);
  if (tick < cursor_tick_) tick = cursor_tick_;
  const uint32_t slot = static_cast<uint32_t>(tick & mask_);
  push(slot, id);
  if (deadline_ns < slot_min_[slot]) slot_min_[slot] = deadline_ns;
}

void TimerWheel::cancel(uint32_t id) {
  if (list_[id] == kNone) return;
  remove(id);
  list_[id] = kNone;
  --size_;
}

void TimerWheel::remove(uint32_t id) {
  const uint32_t list = list_[id];  // exact for a head, which is the only case read below
  unlink(id);
  // An emptied slot's bound becomes exact again (advance() skips empty slots, so it would never
  // be recomputed); otherwise it stays a conservative bound.
  if (list <= mask_ && heads_[list] == kNone) slot_min_[list] = UINT64_MAX;
}

void TimerWheel::release_deferred() {
  const uint32_t slot = static_cast<uint32_t>(cursor_tick_ & mask_);
  while (heads_[deferred_list_] != kNone) {
    const uint32_t id = heads_[deferred_list_];
    unlink(id);
    push(slot, id);
    if (deadline_[id] < slot_min_[slot]) slot_min_[slot] = deadline_[id];
  }
}

uint64_t TimerWheel::next_expiry_hint() const {
  if (size_ == 0) return UINT64_MAX;
  if (heads_[deferred_list_] != kNone || heads_[walk_list_] != kNone) return 0;  // inside advance()
  if (hint_valid_) return hint_ns_;
  // The cursor's slot may hold timers already due; any later slot, i positions on, holds only
  // ticks >= cursor + i, i.e. deadlines > (cursor + i - 1) * resolution. Stop once that bound
  // passes the best found: the walk is short when the wheel is busy, one revolution at most.
  uint64_t best = slot_min_[cursor_tick_ & mask_];
  for (uint64_t i = 1; i <= mask_; ++i) {
    const uint64_t tick = cursor_tick_ + i;
    if ((tick - 1) * resolution_ns_ >= best) break;
    const uint64_t bound = slot_min_[tick & mask_];
    if (bound < best) best = bound;
  }
  hint_ns_ = best;
  hint_valid_ = true;
  return best;
}

}  // namespace ringlb::worker
