// The I/O seam of the sessions (proxy/ops.h) on this worker's ring: each request becomes an SQE
// on its direct descriptors, buffers come from its provided-buffer ring and pool, timers from
// its wheel, the maxconn queue is its AdmissionQueue, access-log records go to its batch.
#pragma once

#include <vector>

#include "metrics/stats.h"
#include "server/proxy/env.h"
#include "server/proxy/ops.h"
#include "server/uring/buf_ring.h"
#include "server/uring/ring.h"
#include "server/uring/user_data.h"
#include "server/worker/access_batch.h"
#include "server/worker/admission_queue.h"
#include "server/worker/buffer_pool.h"
#include "server/worker/timer_wheel.h"

namespace ringlb::worker {

class RingOps final : public proxy::Ops {
 public:
  RingOps(proxy::Env& env, uring::Ring& ring, uring::BufRing& buffers, BufferPool& pool, TimerWheel& timers,
          AccessBatch& access)
      : env_(env), ring_(ring), buffers_(buffers), pool_(pool), timers_(timers), access_(access) {}
  RingOps(const RingOps&) = delete;
  RingOps& operator=(const RingOps&) = delete;

  void peer_name(int slot, sockaddr_in6* out, uint32_t len, uint64_t data) override;
  void recv(int slot, const proxy::RecvSpec& spec, uint64_t data) override;
  void recv_exact(int slot, void* dst, uint32_t len, uint64_t data) override;
  void send_buffer(int slot, int32_t buf, uint32_t off, uint32_t len, uint64_t data) override;
  void send(int slot, const void* bytes, uint32_t len, uint64_t data) override;
  void open_socket(int family, uint64_t data) override;
  void connect(int slot, const Address& to, const __kernel_timespec* timeout, uint64_t data) override;
  void set_recv_lowat(int slot, const int* value, bool before_next) override;
  void shutdown_write(int slot, uint64_t data) override;
  void cancel(uint64_t target, uint64_t data) override;
  void cancel_slot(int slot, uint64_t data) override;
  void close(int slot) override;

  uint8_t* buffer(int32_t buf) override { return buffers_.buffer(static_cast<uint16_t>(buf)); }
  void took_buffer() override { pool_.took_from_ring(); }
  void recycle(int32_t buf) override {
    pool_.returned_to_ring();
    buffers_.recycle(static_cast<uint16_t>(buf));
  }
  bool wait_for_buffer(proxy::FlowRef ref) override { return pool_.wait(ref); }
  bool next_waiter(proxy::FlowRef* ref) override { return pool_.next_waiter(ref); }
  uint32_t buffers_in_ring() const override { return pool_.in_ring(); }

  void schedule(uint32_t id, uint64_t at_ns) override { timers_.schedule(id, at_ns); }
  void unschedule(uint32_t id) override { timers_.cancel(id); }
  bool scheduled(uint32_t id, uint64_t* at_ns) const override {
    if (!timers_.scheduled(id)) return false;
    *at_ns = timers_.deadline(id);
    return true;
  }

  uint64_t enqueue(uint32_t id, uint32_t accept_us) override { return queue_.push(id, accept_us); }
  void left_queue() override { queue_.left(); }
  size_t queued() const override { return queue_.size(); }
  void dispatch_queue(proxy::QueueVisitor& v) override;
  void arm_queue_poll() override;

  void log_access(const AccessRecord& record) override { access_.log(record); }

  // Marks `sqe` quiet (IOSQE_CQE_SKIP_SUCCESS: see Tag::kQuiet*), but for one in kSampleEvery
  // that still posts its completion, for the latency histograms.
  void quiet(io_uring_sqe* sqe, Tag tag);

  // While a slot audit runs: slots closed since it began (see SlotAudit).
  bool auditing = false;
  std::vector<int> closed_during_audit;

 private:
  uint64_t data_plain(Tag tag) const { return encode(tag, 0, env_.now_us); }

  proxy::Env& env_;
  uring::Ring& ring_;
  uring::BufRing& buffers_;
  BufferPool& pool_;
  TimerWheel& timers_;
  AccessBatch& access_;
  AdmissionQueue queue_;
  __kernel_timespec queue_poll_ts_{0, 10'000'000};  // 10 ms
  uint32_t sample_ = 0;
};

}  // namespace ringlb::worker
