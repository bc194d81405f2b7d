// Access-log lines of one worker, batched: the worker never touches the file. A batch goes to
// the writer thread at every tick, or sooner once it is large.
#pragma once

#include <cstdint>
#include <string>

#include "server/access_log/access_log.h"

namespace ringlb::worker {

class AccessBatch {
 public:
  AccessBatch(AccessLog* log, AccessLogFormat format) : log_(log), format_(format) {}
  AccessBatch(const AccessBatch&) = delete;
  AccessBatch& operator=(const AccessBatch&) = delete;

  // One line for a record (sessions make it when they close).
  void log(const AccessRecord& record);
  // Hands what is batched to the writer.
  void flush();

 private:
  AccessLog* const log_;  // null: no access log
  const AccessLogFormat format_;
  std::string batch_;
  uint64_t lines_ = 0;
};

}  // namespace ringlb::worker
