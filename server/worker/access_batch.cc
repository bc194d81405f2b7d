#include "server/worker/access_batch.h"

namespace ringlb::worker {
namespace {

constexpr size_t kFlushBytes = 64 * 1024;

}  // namespace

void AccessBatch::log(const AccessRecord& record) {
  if (log_ == nullptr) return;
  append_access(format_, record, &batch_);
  ++lines_;
  // Handed over at each tick, or sooner when a burst of closes makes the batch large.
  if (batch_.size() >= kFlushBytes) flush();
}

void AccessBatch::flush() {
  if (lines_ == 0 || log_ == nullptr) return;
  log_->submit(&batch_, lines_);
  lines_ = 0;
}

}  // namespace ringlb::worker
