// Recovery of a hand-off whose completion was lost. msg_ring reports -EOVERFLOW to the acceptor
// when this worker's ring got the descriptor, in a slot it chose, but no completion for it
// (io_uring/msg_ring.c: "the sender must ensure that a later IORING_OP_MSG_RING delivers the
// message"). The acceptor then sends Tag::kLostHandoff, and the worker finds the slot itself:
// it probes every slot no connection holds, and a probe that finds a socket there finds the
// client, which is then served like any hand-off.
//
// Why no live slot is mistaken for it: installs from hand-offs run in this thread's task work
// and post their completion as they install, and socket_direct_alloc completes inline, so every
// slot filled before a probe ran has its completion ahead of the probe's in the CQ; a slot is
// taken as lost only if it is still unclaimed when its probe's completion is handled.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "server/proxy/driver.h"
#include "server/proxy/env.h"
#include "server/uring/file_table.h"
#include "server/uring/ring.h"
#include "server/worker/ring_ops.h"

namespace ringlb::worker {

class SlotAudit {
 public:
  SlotAudit(proxy::Env& env, uring::Ring& ring, uring::FileTable& table, RingOps& ops, proxy::Driver& driver)
      : env_(env), ring_(ring), table_(table), ops_(ops), driver_(driver) {}
  SlotAudit(const SlotAudit&) = delete;
  SlotAudit& operator=(const SlotAudit&) = delete;

  // A hand-off from `listener` lost its completion: audit (or audit again after the current one).
  void on_lost_handoff(uint32_t listener);
  void on_probe(uint32_t slot, int res);
  uint64_t recovered() const { return recovered_; }

 private:
  void start();
  bool held(int slot) const;

  proxy::Env& env_;
  uring::Ring& ring_;
  uring::FileTable& table_;
  RingOps& ops_;
  proxy::Driver& driver_;
  std::deque<uint32_t> lost_;   // listeners of lost hand-offs not yet found
  uint32_t pending_ = 0;        // probes in flight
  bool again_ = false;          // another loss was reported during this audit
  std::vector<int> probe_out_;  // getsockopt results, by slot (read by the kernel's writes only)
  uint64_t recovered_ = 0;
};

}  // namespace ringlb::worker
