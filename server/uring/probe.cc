#include "server/uring/probe.h"

#include <cstring>
#include <memory>

#include "server/uring/compat.h"
#include "server/uring/ring.h"

namespace ringlb::uring {

std::span<const RequiredOp> required_ops() {
  static const RequiredOp kOps[] = {
      {IORING_OP_SOCKET, "SOCKET (socket_direct_alloc)", "5.19"},
      {kOpUringCmd, "URING_CMD (socket setsockopt)", "6.7"},
      {kOpBind, "BIND", "6.11"},
      {kOpListen, "LISTEN", "6.11"},
      {IORING_OP_ACCEPT, "ACCEPT (multishot direct)", "5.19"},
      {kOpMsgRing, "MSG_RING (send fd)", "6.0"},
      {kOpFixedFdInstall, "FIXED_FD_INSTALL", "6.8"},
      {IORING_OP_CONNECT, "CONNECT", "5.5"},
      {IORING_OP_LINK_TIMEOUT, "LINK_TIMEOUT", "5.5"},
      {IORING_OP_TIMEOUT, "TIMEOUT", "5.4"},
      {IORING_OP_RECV, "RECV", "5.6"},
      {IORING_OP_WRITE_FIXED, "WRITE_FIXED", "5.1"},
      {IORING_OP_SHUTDOWN, "SHUTDOWN", "5.11"},
      {IORING_OP_CLOSE, "CLOSE (close_direct)", "5.15"},
      {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL (by fixed fd)", "6.0"},
      {IORING_OP_READ, "READ", "5.6"},
  };
  return kOps;
}

std::string missing_ops(const io_uring_probe* probe, std::span<const RequiredOp> required) {
  std::string out;
  for (const RequiredOp& op : required) {
    // io_uring_opcode_supported in 2.3 does not range-check against the probe's last_op for us
    // in every version; do it here.
    const bool known = probe != nullptr && op.opcode <= probe->last_op;
    const bool ok = known && (probe->ops[op.opcode].flags & IO_URING_OP_SUPPORTED);
    if (ok) continue;
    if (!out.empty()) out += ", ";
    out += op.name;
    out += " (Linux ";
    out += op.kernel;
    out += ")";
  }
  return out;
}

Status check_kernel() {
  Ring ring;
  RingOptions options;
  options.entries = 4;
  options.defer_taskrun = true;
  if (int ret = ring.init(options); ret < 0) {
    return Status::failure(std::string("cannot create an io_uring with SINGLE_ISSUER|DEFER_TASKRUN (Linux 6.1): ") +
                           strerror(-ret));
  }
  std::unique_ptr<io_uring_probe, void (*)(io_uring_probe*)> probe(
      io_uring_get_probe_ring(ring.get()), io_uring_free_probe);
  if (!probe) return Status::failure("cannot probe io_uring operations (IORING_REGISTER_PROBE, Linux 5.6)");
  std::string missing = missing_ops(probe.get(), required_ops());
  if (!missing.empty()) return Status::failure("the kernel lacks io_uring operations ringlb needs: " + missing);
  return {};
}

}  // namespace ringlb::uring
