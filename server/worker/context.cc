#include "server/worker/context.h"

namespace ringlb::worker {
namespace {

// One quiet op in this many still posts its completion, so its latency is measured.
constexpr uint32_t kSampleEvery = 64;

}  // namespace

void Context::quiet(io_uring_sqe* sqe, Tag tag) {
  const bool sample = config.metrics_enabled && ++sample_ % kSampleEvery == 0;
  if (!sample) sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  sqe->user_data = data_plain(tag, 0);
}

void Context::close_slot(int slot_index) {
  io_uring_sqe* sqe = ring.sqe();
  io_uring_prep_close_direct(sqe, static_cast<unsigned>(slot_index));
  quiet(sqe, Tag::kQuietClose);
  stats.open_slots.sub();
  // A slot that arrived (a hand-off while this worker was full) and was closed after its audit
  // probe ran would otherwise look like the lost one.
  if (auditing) closed_during_audit.push_back(slot_index);
}

}  // namespace ringlb::worker
