// Access-log lines of one worker, batched: the worker never touches the file. A batch goes to
// the writer thread at every tick, or sooner once it is large.
#pragma once

#include <cstdint>
#include <string>

#include "metrics/stats.h"

namespace ringlb::worker {

struct Context;

class AccessBatch {
 public:
  explicit AccessBatch(Context& ctx) : ctx_(ctx) {}
  AccessBatch(const AccessBatch&) = delete;
  AccessBatch& operator=(const AccessBatch&) = delete;

  // One line for connection `id`, closing now for `reason`.
  void log(uint32_t id, metrics::CloseReason reason);
  // Hands what is batched to the writer.
  void flush();

 private:
  Context& ctx_;
  std::string batch_;
  uint64_t lines_ = 0;
};

}  // namespace ringlb::worker
