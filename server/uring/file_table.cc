#include "server/uring/file_table.h"

#include <cerrno>

namespace ringlb::uring {

FileTable::~FileTable() {
  if (ring_ != nullptr && slots_ > 0) io_uring_unregister_files(ring_->get());
}

int FileTable::init(Ring& ring, unsigned slots) {
  if (ring_ != nullptr) return -EBUSY;
  int ret = io_uring_register_files_sparse(ring.get(), slots);
  if (ret < 0) return ret;
  ring_ = &ring;
  slots_ = slots;
  return 0;
}

int FileTable::close_slot(int slot) {
  int empty = -1;
  int ret = io_uring_register_files_update(ring_->get(), static_cast<unsigned>(slot), &empty, 1);
  return ret < 0 ? ret : 0;
}

int FileTable::install_fd(int slot, int fd) {
  int ret = io_uring_register_files_update(ring_->get(), static_cast<unsigned>(slot), &fd, 1);
  return ret < 0 ? ret : 0;
}

}  // namespace ringlb::uring
