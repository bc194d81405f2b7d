#include "server/worker/diagnostics.h"

#include <unistd.h>

#include "server/control/diagnostics.h"
#include "server/proxy/snapshot_ref.h"
#include "server/uring/compat.h"

namespace ringlb::worker {

void Diagnostics::start() {
  text_.clear();
  pending_ = 0;
  for (const proxy::Session& s : driver_.sessions()) {
    if (s.phase != proxy::Phase::kPump) continue;
    for (const bool backend_side : {false, true}) {
      io_uring_sqe* sqe = ring_.sqe();
      uring::prep_fixed_fd_install(sqe, backend_side ? s.backend : s.client, 0);
      sqe->user_data = encode(Tag::kDiagInstall, s.id | (backend_side ? kDiagBackendSide : 0), env_.now_us);
      ++pending_;
    }
  }
  if (pending_ == 0) finish();
}

void Diagnostics::on_install(uint32_t index, int res) {
  const uint32_t id = index & ~kDiagBackendSide;
  if (res >= 0) {
    env_.stats.fd_installs_diagnostics.add();
    const proxy::Session& s = driver_.sessions()[id];
    std::string side = " side=client";
    if ((index & kDiagBackendSide) != 0) {
      // The connection may have ended while the install ran; the socket is still described.
      side = " side=backend";
      if (s.phase != proxy::Phase::kFree && s.snap != nullptr && s.backend_index >= 0) {
        side += " backend=" + s.snap->snapshot->backends[static_cast<size_t>(s.backend_index)].name;
      }
    }
    text_ += "worker=" + std::to_string(env_.worker) + " conn=" + std::to_string(id) + side + " " +
             describe_socket(res) + "\n";
    close(res);
  }
  if (--pending_ == 0) finish();
}

void Diagnostics::finish() {
  {
    WorkerSlot& slot = *env_.shared.workers[env_.worker];
    std::lock_guard<std::mutex> lock(slot.diagnostics_mu);
    slot.diagnostics = text_;
  }
  io_uring_sqe* sqe = ring_.sqe();
  uring::prep_msg_ring_data(sqe, env_.shared.acceptor_ring_fd, 0, encode(Tag::kDiagDone, env_.worker, env_.now_us));
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  sqe->user_data = encode(Tag::kQuietMessage, 0, env_.now_us);
}

}  // namespace ringlb::worker
