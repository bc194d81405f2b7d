#include "server/worker/slot_audit.h"

#include <sys/socket.h>

#include <cstdio>

#include "server/uring/compat.h"
#include "server/base/log.h"

namespace ringlb::worker {

void SlotAudit::on_lost_handoff(uint32_t listener) {
  lost_.push_back(listener);
  if (pending_ > 0) {
    again_ = true;
    return;
  }
  start();
}

void SlotAudit::start() {
  const unsigned slots = table_.size();
  std::vector<bool> in_use(slots, false);
  for (const proxy::Session& s : driver_.sessions()) {
    if (s.client >= 0) in_use[static_cast<size_t>(s.client)] = true;
    if (s.backend >= 0) in_use[static_cast<size_t>(s.backend)] = true;
  }
  probe_out_.assign(slots, 0);
  ops_.auditing = true;
  for (unsigned slot = 0; slot < slots; ++slot) {
    if (in_use[slot]) continue;
    io_uring_sqe* sqe = ring_.sqe();
    uring::prep_cmd_sock_direct(sqe, uring::kSocketOpGetsockopt, static_cast<int>(slot), SOL_SOCKET,
                                SO_DOMAIN, &probe_out_[slot], sizeof(int));
    sqe->user_data = encode(Tag::kAuditProbe, slot, env_.now_us);
    ++pending_;
  }
}

bool SlotAudit::held(int slot) const {
  for (const proxy::Session& s : driver_.sessions()) {
    if (s.client == slot || s.backend == slot) return true;
  }
  for (int closed : ops_.closed_during_audit) {
    if (closed == slot) return true;  // it was claimed, and closed, after its probe ran
  }
  return false;
}

void SlotAudit::on_probe(uint32_t slot, int res) {
  --pending_;
  // -EBADF: an empty slot. A socket in a slot nobody claimed is the lost hand-off.
  if (res >= 0 && !held(static_cast<int>(slot))) {
    const uint32_t listener = lost_.empty() ? 0 : lost_.front();
    if (!lost_.empty()) lost_.pop_front();
    ++recovered_;
    env_.stats.lost_handoffs_recovered.add();
    log(LogLevel::kWarning, "worker %u: recovered a hand-off whose completion was lost (slot %u)",
        env_.worker, slot);
    driver_.open(static_cast<int>(slot), static_cast<uint16_t>(listener), env_.now_us);
  }
  if (pending_ > 0) return;
  ops_.auditing = false;
  ops_.closed_during_audit.clear();
  if (again_) {
    again_ = false;
    return start();
  }
  lost_.clear();  // found by an earlier pass, or the client was gone before it could be found
}

}  // namespace ringlb::worker
