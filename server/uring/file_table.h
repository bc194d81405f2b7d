// RAII owner of a ring's sparse direct-descriptor table.
#pragma once

#include "server/uring/ring.h"

namespace ringlb::uring {

class FileTable {
 public:
  FileTable() = default;
  ~FileTable();
  FileTable(const FileTable&) = delete;
  FileTable& operator=(const FileTable&) = delete;

  // Registers `slots` empty slots on `ring`. 0 or -errno.
  int init(Ring& ring, unsigned slots);
  unsigned size() const { return slots_; }

  // Closes one slot synchronously through the register path (no SQE): for slow paths and error
  // recovery, where no completion handler is waiting. 0 or -errno.
  int close_slot(int slot);
  // Puts an existing regular fd into `slot` (the table takes its own reference). 0 or -errno.
  int install_fd(int slot, int fd);

 private:
  Ring* ring_ = nullptr;
  unsigned slots_ = 0;
};

}  // namespace ringlb::uring
