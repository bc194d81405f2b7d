#include "server/worker/worker.h"

#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "server/base/clock.h"
#include "server/uring/compat.h"
#include "server/base/log.h"

namespace ringlb {
namespace {

using metrics::CloseReason;
using metrics::Op;
using proxy::kDown;
using proxy::kUp;

constexpr uint64_t kTickNs = 200'000'000;
// The timer wheel: 10 ms slots, 32768 of them (a revolution is 5.5 minutes, longer than the
// default 5-minute idle timeout, so an idle connection's timer is looked at once per timeout).
constexpr uint64_t kWheelResolutionNs = 10'000'000;
constexpr uint32_t kWheelSlots = 32768;

// The op whose completion latency a tag measures, or kCount for none.
Op op_of(Tag tag) {
  switch (tag) {
    case Tag::kSocket: return Op::k_socket;
    case Tag::kConnect: return Op::k_connect;
    case Tag::kRecvClient:
    case Tag::kRecvBackend:
    case Tag::kRecvProxyHeader:
    case Tag::kConsumeProxyHeader:
    case Tag::kRecvClientHello: return Op::k_recv;
    case Tag::kSendClient:
    case Tag::kSendBackend:
    case Tag::kSendProxyHeader: return Op::k_send;
    case Tag::kShutdown: return Op::k_shutdown;
    case Tag::kCancel: return Op::k_cancel;
    case Tag::kQuietClose: return Op::k_close;
    default: return Op::kCount;
  }
}

}  // namespace

Worker::Worker(SharedState& shared, unsigned index, uring::BufferRegion& region)
    : ctx_(shared, index),
      region_(region),
      pool_(shared.config.buffers_per_worker),
      timers_(std::max(1u, shared.workers[index]->capacity), kWheelResolutionNs, kWheelSlots, monotonic_ns()),
      access_(ctx_),
      diagnostics_(ctx_),
      audit_(ctx_),
      snapshots_(ctx_),
      lifecycle_(ctx_),
      intake_(ctx_),
      sni_(ctx_),
      upstream_(ctx_),
      pump_(ctx_) {
  ctx_.pool = &pool_;
  ctx_.timers = &timers_;
  ctx_.access = &access_;
  ctx_.snapshots = &snapshots_;
  ctx_.lifecycle = &lifecycle_;
  ctx_.intake = &intake_;
  ctx_.sni = &sni_;
  ctx_.upstream = &upstream_;
  ctx_.pump = &pump_;
}

unsigned Worker::cq_entries(unsigned capacity) {
  // At most six completions per connection are pending at once: per direction a recv or a send
  // (never both), a forwarded FIN's SHUTDOWN, and a cancel per slot when it closes. On top: a
  // burst of hand-offs, and the loop's own timers. Slow paths (ctl connections, a slot audit)
  // can exceed this at full capacity; their completions then wait on the kernel's overflow
  // list, which loses nothing, only costs a slower path (tested with a tiny CQ).
  const unsigned needed = capacity * 6 + kAcceptSlots + 256;
  unsigned entries = 8192;
  while (entries < needed) entries *= 2;
  return entries;
}

void Worker::run(std::promise<int>* ready) {
  const std::string name = "ringlb-w" + std::to_string(ctx_.index);
  pthread_setname_np(pthread_self(), name.c_str());  // for top -H, perf and /proc
  int ret = setup();
  ready->set_value(ret < 0 ? ret : ctx_.ring.fd());
  if (ret < 0) return;
  loop();
  if (ctx_.shared.access_log != nullptr) access_.flush();
  ctx_.slot.stopped.store(true);
}

int Worker::fail(const char* step, int ret) {
  log(LogLevel::kError, "worker %u: %s: %s", ctx_.index, step, strerror(-ret));
  return ret;
}

int Worker::setup() {
  const unsigned capacity = ctx_.slot.capacity;
  const Config& config = ctx_.config;
  if (capacity > worker::kMaxConnsPerWorker) return fail("too many connections per worker", -EINVAL);
  uring::RingOptions options;
  options.entries = 1024;
  // The CQ must not overflow, or acceptor hand-offs would take the kernel's slow overflow path.
  options.cq_entries = cq_entries(capacity);
  if (options.cq_entries > 65536) return fail("completion queue for --max-connections", -E2BIG);
  // Test hook: a deliberately tiny CQ, to prove that overflowing it loses nothing.
  if (const char* tiny = getenv("RINGLB_TEST_WORKER_CQ_ENTRIES")) {
    options.cq_entries = static_cast<unsigned>(atoi(tiny));
    options.entries = std::min(options.entries, options.cq_entries);
  }
  if (int ret = ctx_.ring.init(options); ret < 0) return fail("io_uring_setup", ret);
  // Passing the registered ring index instead of the fd saves an fd lookup per io_uring_enter.
  io_uring_register_ring_fd(ctx_.ring.get());
  // Only SHUTDOWN goes to io-wq here (the kernel always punts it); it never blocks for long, so
  // a couple of io-wq threads per worker are plenty. Unbounded, bursts spawn one per request.
  unsigned iowq_workers[2] = {1, 2};  // bounded (file I/O), unbounded (sockets)
  io_uring_register_iowq_max_workers(ctx_.ring.get(), iowq_workers);
  if (!config.cpus.empty()) {
    // --cpu-affinity: this thread and the io-wq threads that run its SHUTDOWNs share one CPU, so
    // handing work between them is a local wake-up rather than an interrupt to another CPU.
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(config.cpus[ctx_.index % config.cpus.size()], &set);
    if (int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); err != 0) {
      return fail("setting the CPU affinity", -err);
    }
    if (int ret = io_uring_register_iowq_aff(ctx_.ring.get(), sizeof(set), &set); ret < 0) {
      return fail("setting the io-wq CPU affinity", ret);
    }
  }
  if (int ret = ctx_.table.init(ctx_.ring, table_slots(capacity)); ret < 0) {
    return fail("registering the descriptor table", ret);
  }
  if (config.iowq_batch) {
    if (int ret = create_batch_iowq_thread(); ret < 0) {
      log(LogLevel::kWarning, "worker %u: SCHED_BATCH io-wq thread: %s (left as is)", ctx_.index, strerror(-ret));
    }
  }
  if (int ret = region_.clone_into(ctx_.ring); ret < 0) return fail("clone_buffers", ret);
  if (int ret = ctx_.buffers.init(ctx_.ring, 0, region_.part(ctx_.index), config.buffers_per_worker,
                                  config.buffer_size);
      ret < 0) {
    return fail("registering the provided-buffer ring", ret);
  }
  lifecycle_.init(capacity);
  tick_ts_.tv_sec = static_cast<long long>(kTickNs / 1'000'000'000ULL);
  tick_ts_.tv_nsec = static_cast<long long>(kTickNs % 1'000'000'000ULL);
  ctx_.now_ns = monotonic_ns();
  ctx_.now_us = micros32(ctx_.now_ns);
  arm_tick();
  return 0;
}

int Worker::create_batch_iowq_thread() {
  // io-wq threads are created on demand by the thread that queues work, and inherit its
  // scheduling policy. SHUTDOWN goes to the bounded queue, which this worker limits to one
  // thread; as the last of its queue that thread never exits, so creating it now, while this
  // thread is briefly SCHED_BATCH, makes every SHUTDOWN run SCHED_BATCH. Measured
  // (bench/README.md): queueing one then no longer preempts the worker (which would also make
  // io-wq wait for the ring lock the worker holds); it runs when the worker yields, several at a
  // time, and the process switches 40% less often per connection in close mode.
  int policy = SCHED_OTHER;
  sched_param saved{};
  if (int err = pthread_getschedparam(pthread_self(), &policy, &saved); err != 0) return -err;
  const sched_param batch{};
  if (int err = pthread_setschedparam(pthread_self(), SCHED_BATCH, &batch); err != 0) return -err;
  // A SHUTDOWN of a slot nothing uses yet: the kernel still hands it to io-wq, creating the
  // thread, where it fails with -EBADF.
  const int empty_slot = static_cast<int>(table_slots(ctx_.slot.capacity) - 1);
  const int ret = uring::run_one(ctx_.ring, [&](io_uring_sqe* sqe) {
    io_uring_prep_shutdown(sqe, empty_slot, SHUT_WR);
    sqe->flags |= IOSQE_FIXED_FILE;
  });
  if (int err = pthread_setschedparam(pthread_self(), policy, &saved); err != 0) return -err;
  return ret == -EBADF || ret >= 0 ? 0 : ret;
}

void Worker::loop() {
  for (;;) {
    pump_.submit_shutdowns();
    const int ret = ctx_.ring.submit_and_wait_one();
    if (ret == -EBADR) {
      on_completions_lost();
    } else if (ret < 0) {
      log(LogLevel::kError, "worker %u: io_uring_submit_and_wait: %s", ctx_.index, strerror(-ret));
    }
    ctx_.now_ns = monotonic_ns();
    ctx_.now_us = micros32(ctx_.now_ns);
    ctx_.ring.reap([this](const io_uring_cqe* cqe) { handle(cqe); });
    if (ctx_.ring.cq_overflow_pending()) ctx_.stats.cq_overflows.add();
    upstream_.retry_sockets();
    upstream_.dispatch_queue();
    timers_.advance(ctx_.now_ns, [this](uint32_t id) { lifecycle_.on_timer(id); });
    if (ctx_.draining && ctx_.live == 0) break;
  }
}

void Worker::handle(const io_uring_cqe* cqe) {
  const uint64_t data = cqe->user_data;
  const Tag tag = tag_of(data);
  const uint32_t index = index_of(data);
  const Op op = op_of(tag);
  if (op != Op::kCount && ctx_.config.metrics_enabled) {
    ctx_.stats.op(op).observe_ns(elapsed_ns_since(time_of(data), ctx_.now_ns));
  }
  // A message from another ring: what its sender wrote before sending is ours to read now.
  if (tag == Tag::kHandoff || tag == Tag::kLostHandoff || tag == Tag::kControl) uring::handoff_acquire(ctx_.ring.fd());
  switch (tag) {
    case Tag::kHandoff: return intake_.on_handoff(cqe->res, index, time_of(data));
    case Tag::kLostHandoff: return audit_.on_lost_handoff(index);
    case Tag::kAuditProbe: return audit_.on_probe(index, cqe->res);
    case Tag::kControl: return on_control(index);
    case Tag::kDiagInstall: return diagnostics_.on_install(index, cqe->res);
    case Tag::kTick: return on_tick();
    case Tag::kQueuePoll: return upstream_.on_queue_poll();
    case Tag::kQuietSockopt:
      return;  // a failure cancels the linked connect, which reports it
    case Tag::kQuietConnectTimeout:
      return;  // the connect it cancelled reports -ECANCELED
    case Tag::kQuietMessage:
      return;  // only a failure gets here: the acceptor is gone (shutting down)
    case Tag::kQuietClose:
      if (cqe->res < 0) {
        log(LogLevel::kWarning, "worker %u: close_direct: %s", ctx_.index, strerror(-cqe->res));
      }
      return;
    default:
      return handle_conn(tag, index, cqe);
  }
}

void Worker::handle_conn(Tag tag, uint32_t index, const io_uring_cqe* cqe) {
  const uint32_t id = worker::conn_of(index);
  if (id >= ctx_.conns.size() || ctx_.conns[id].gen != worker::gen_of(index) ||
      ctx_.conns[id].state == proxy::State::kFree) {
    // Meant for an earlier client of this slot (freed after lost completions): drop it, giving
    // back what it holds.
    ctx_.stats.stale_completions.add();
    pump_.release_buffer(pump_.take_buffer(cqe->flags));
    if (tag == Tag::kSocket && cqe->res >= 0) {
      ctx_.stats.open_slots.add();
      ctx_.close_slot(cqe->res);
    }
    return;
  }
  const int res = cqe->res;
  switch (tag) {
    case Tag::kPeerName: return intake_.on_peer_name(id, res);
    case Tag::kRecvProxyHeader: return intake_.on_header_peek(id, res, cqe->flags);
    case Tag::kConsumeProxyHeader: return intake_.on_header_consumed(id, res);
    case Tag::kRecvClientHello: return sni_.on_peek(id, res, cqe->flags);
    case Tag::kSocket: return upstream_.on_socket(id, res);
    case Tag::kConnect: return upstream_.on_connect(id, res);
    case Tag::kSendProxyHeader: return upstream_.on_proxy_header(id, res);
    case Tag::kRecvClient: return pump_.on_recv(id, kUp, res, cqe->flags);
    case Tag::kRecvBackend: return pump_.on_recv(id, kDown, res, cqe->flags);
    case Tag::kSendBackend: return pump_.on_send(id, kUp, res);
    case Tag::kSendClient: return pump_.on_send(id, kDown, res);
    case Tag::kShutdown: return pump_.on_shutdown(id);
    case Tag::kCancel:
      --ctx_.conns[id].inflight;
      return lifecycle_.maybe_finish(id);
    default:
      log(LogLevel::kWarning, "worker %u: completion with unknown tag %u", ctx_.index,
          static_cast<unsigned>(tag));
      return;
  }
}

void Worker::on_control(uint32_t what) {
  if (what == kControlDiagnostics) return diagnostics_.start();
  if (!ctx_.draining) {
    ctx_.draining = true;
    ctx_.drain_deadline_ns = ctx_.now_ns + to_ns(ctx_.config.drain_timeout);
  }
}

void Worker::arm_tick() {
  io_uring_sqe* sqe = ctx_.ring.sqe();
  io_uring_prep_timeout(sqe, &tick_ts_, 0, 0);
  sqe->user_data = ctx_.data_plain(Tag::kTick, 0);
}

void Worker::on_tick() {
  // The tick wakes the loop, which fires the timers that are due; here only what is periodic.
  snapshots_.refresh();  // a reload happened: connections to removed backends get a deadline
  if (ctx_.draining && ctx_.now_ns >= ctx_.drain_deadline_ns && ctx_.live > 0) {
    lifecycle_.close_all(CloseReason::k_drain);
  }
  pump_.unstick_waiters();
  if (ctx_.shared.access_log != nullptr) access_.flush();
  ctx_.stats.cq_dropped.set(ctx_.ring.cq_dropped());
  if (!(ctx_.draining && ctx_.live == 0)) arm_tick();
}

void Worker::on_completions_lost() {
  ctx_.stats.cq_dropped.set(ctx_.ring.cq_dropped());
  if (!ctx_.completions_lost) {
    log(LogLevel::kWarning, "worker %u: the kernel dropped completions; recovering", ctx_.index);
  }
  // From now on a closing connection is freed after a grace period even if it still counts
  // completions in flight, and a stale completion is recognised by its generation.
  ctx_.completions_lost = true;
  for (uint32_t id = 0; id < ctx_.conns.size(); ++id) {
    if (ctx_.conns[id].state == proxy::State::kClosing) lifecycle_.close_grace(id);
  }
  // A lost hand-off leaves a client in an unclaimed slot: look for it.
  audit_.on_lost_handoff(0);
}

}  // namespace ringlb
