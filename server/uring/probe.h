// Start-up check that the kernel has every io_uring operation ringlb uses.
#pragma once

#include <liburing.h>

#include <span>
#include <string>

#include "server/base/error.h"

namespace ringlb::uring {

struct RequiredOp {
  int opcode;
  const char* name;
  const char* kernel;  // first kernel version that has it, as ringlb uses it
};

// The operations ringlb needs, with the kernel that introduced each.
std::span<const RequiredOp> required_ops();

// Names every op of `required` that `probe` lacks, one "NAME (Linux X)" each, comma-separated;
// empty when all are there.
std::string missing_ops(const io_uring_probe* probe, std::span<const RequiredOp> required);

// Probes the running kernel: an error (a failure: the machine refuses, exit 1) gives the one-line
// reason ringlb cannot run.
Status check_kernel();

}  // namespace ringlb::uring
