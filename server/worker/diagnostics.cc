#include "server/worker/diagnostics.h"

#include <unistd.h>

#include "server/control/diagnostics.h"
#include "server/proxy/snapshot_ref.h"
#include "server/uring/compat.h"
#include "server/worker/context.h"

namespace ringlb::worker {

void Diagnostics::start() {
  text_.clear();
  pending_ = 0;
  for (uint32_t id = 0; id < ctx_.conns.size(); ++id) {
    const proxy::Conn& conn = ctx_.conns[id];
    if (conn.state != proxy::State::kProxying) continue;
    for (const bool backend_side : {false, true}) {
      io_uring_sqe* sqe = ctx_.ring.sqe();
      uring::prep_fixed_fd_install(sqe, backend_side ? conn.backend : conn.client, 0);
      sqe->user_data = ctx_.data_plain(Tag::kDiagInstall, id | (backend_side ? kDiagBackendSide : 0));
      ++pending_;
    }
  }
  if (pending_ == 0) finish();
}

void Diagnostics::on_install(uint32_t index, int res) {
  const uint32_t id = index & ~kDiagBackendSide;
  if (res >= 0) {
    ctx_.stats.fd_installs_diagnostics.add();
    const proxy::Conn& conn = ctx_.conns[id];
    std::string side = " side=client";
    if ((index & kDiagBackendSide) != 0) {
      // The connection may have ended while the install ran; the socket is still described.
      side = " side=backend";
      if (conn.state != proxy::State::kFree && conn.snap != nullptr && conn.backend_index >= 0) {
        side += " backend=" + conn.snap->snapshot->backends[static_cast<size_t>(conn.backend_index)].name;
      }
    }
    text_ += "worker=" + std::to_string(ctx_.index) + " conn=" + std::to_string(id) + side + " " +
             describe_socket(res) + "\n";
    close(res);
  }
  if (--pending_ == 0) finish();
}

void Diagnostics::finish() {
  {
    std::lock_guard<std::mutex> lock(ctx_.slot.diagnostics_mu);
    ctx_.slot.diagnostics = text_;
  }
  io_uring_sqe* sqe = ctx_.ring.sqe();
  uring::prep_msg_ring_data(sqe, ctx_.shared.acceptor_ring_fd, 0, encode(Tag::kDiagDone, ctx_.index, ctx_.now_us));
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  sqe->user_data = ctx_.data_plain(Tag::kQuietMessage, 0);
}

}  // namespace ringlb::worker
