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
#include "server/proxy/tags.h"
#include "server/uring/compat.h"
#include "server/base/log.h"

namespace ringlb {
namespace {

using metrics::CloseReason;
using metrics::Op;

constexpr uint64_t kTickNs = 200'000'000;
// The timer wheel: 10 ms slots, 32768 of them (a revolution is 5.5 minutes, longer than the
// default 5-minute idle timeout, so an idle connection's timer is looked at once per timeout).
constexpr uint64_t kWheelResolutionNs = 10'000'000;
constexpr uint32_t kWheelSlots = 32768;

// The op whose completion latency a tag measures, or kCount for none.
Op op_of(Tag tag) {
  switch (tag) {
    case Tag::kConnectSocket: return Op::k_socket;
    case Tag::kConnect: return Op::k_connect;
    case Tag::kPumpRecvClient:
    case Tag::kPumpRecvBackend:
    case Tag::kProxyHeaderPeek:
    case Tag::kProxyHeaderConsume:
    case Tag::kHelloPeek:
    case Tag::kTlsAcceptRecv:
    case Tag::kTlsConnectRecv: return Op::k_recv;
    case Tag::kPumpSendClient:
    case Tag::kPumpSendBackend:
    case Tag::kConnectProxyHeader:
    case Tag::kTlsAcceptSend:
    case Tag::kTlsConnectSend: return Op::k_send;
    case Tag::kPumpShutdown: return Op::k_shutdown;
    case Tag::kPumpCancel:
    case Tag::kSessionCancel: return Op::k_cancel;
    case Tag::kQuietClose: return Op::k_close;
    default: return Op::kCount;
  }
}

unsigned capped(unsigned capacity) { return std::min<unsigned>(std::max(1u, capacity), proxy::kMaxSessions); }

}  // namespace

Worker::Worker(SharedState& shared, unsigned index, uring::BufferRegion& region)
    : env_(shared, index),
      slot_(*shared.workers[index]),
      region_(region),
      pool_(shared.config.buffers_per_worker),
      timers_(capped(slot_.capacity), kWheelResolutionNs, kWheelSlots, monotonic_ns()),
      access_(shared.access_log, shared.config.access_log_format),
      ops_(env_, ring_, buffers_, pool_, timers_, access_),
      snapshots_(shared, index),
      driver_(env_, ops_, snapshots_, capped(slot_.capacity)),
      diagnostics_(env_, ring_, driver_),
      audit_(env_, ring_, table_, ops_, driver_) {}

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
  const std::string name = "ringlb-w" + std::to_string(env_.worker);
  pthread_setname_np(pthread_self(), name.c_str());  // for top -H, perf and /proc
  int ret = setup();
  ready->set_value(ret < 0 ? ret : ring_.fd());
  if (ret < 0) return;
  loop();
  access_.flush();
  slot_.stopped.store(true);
}

int Worker::fail(const char* step, int ret) {
  log(LogLevel::kError, "worker %u: %s: %s", env_.worker, step, strerror(-ret));
  return ret;
}

int Worker::setup() {
  const unsigned capacity = slot_.capacity;
  const Config& config = env_.config;
  if (capacity > proxy::kMaxSessions) return fail("too many connections per worker", -EINVAL);
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
  if (int ret = ring_.init(options); ret < 0) return fail("io_uring_setup", ret);
  // Passing the registered ring index instead of the fd saves an fd lookup per io_uring_enter.
  io_uring_register_ring_fd(ring_.get());
  // Only SHUTDOWN goes to io-wq here (the kernel always punts it); it never blocks for long, so
  // a couple of io-wq threads per worker are plenty. Unbounded, bursts spawn one per request.
  unsigned iowq_workers[2] = {1, 2};  // bounded (file I/O), unbounded (sockets)
  io_uring_register_iowq_max_workers(ring_.get(), iowq_workers);
  if (!config.cpus.empty()) {
    // --cpu-affinity: this thread and the io-wq threads that run its SHUTDOWNs share one CPU, so
    // handing work between them is a local wake-up rather than an interrupt to another CPU.
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(config.cpus[env_.worker % config.cpus.size()], &set);
    if (int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); err != 0) {
      return fail("setting the CPU affinity", -err);
    }
    if (int ret = io_uring_register_iowq_aff(ring_.get(), sizeof(set), &set); ret < 0) {
      return fail("setting the io-wq CPU affinity", ret);
    }
  }
  if (int ret = table_.init(ring_, table_slots(capacity)); ret < 0) {
    return fail("registering the descriptor table", ret);
  }
  if (config.iowq_batch) {
    if (int ret = create_batch_iowq_thread(); ret < 0) {
      log(LogLevel::kWarning, "worker %u: SCHED_BATCH io-wq thread: %s (left as is)", env_.worker, strerror(-ret));
    }
  }
  if (int ret = region_.clone_into(ring_); ret < 0) return fail("clone_buffers", ret);
  if (int ret = buffers_.init(ring_, 0, region_.part(env_.worker), config.buffers_per_worker,
                                  config.buffer_size);
      ret < 0) {
    return fail("registering the provided-buffer ring", ret);
  }
  tick_ts_.tv_sec = static_cast<long long>(kTickNs / 1'000'000'000ULL);
  tick_ts_.tv_nsec = static_cast<long long>(kTickNs % 1'000'000'000ULL);
  env_.now_ns = monotonic_ns();
  env_.now_us = micros32(env_.now_ns);
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
  const int empty_slot = static_cast<int>(table_slots(slot_.capacity) - 1);
  const int ret = uring::run_one(ring_, [&](io_uring_sqe* sqe) {
    io_uring_prep_shutdown(sqe, empty_slot, SHUT_WR);
    sqe->flags |= IOSQE_FIXED_FILE;
  });
  if (int err = pthread_setschedparam(pthread_self(), policy, &saved); err != 0) return -err;
  return ret == -EBADF || ret >= 0 ? 0 : ret;
}

void Worker::loop() {
  for (;;) {
    driver_.submit_deferred();
    // A timer due before the next tick (a held recv of a bandwidth limit, an interim access-log
    // record) bounds the wait, so it fires on time rather than at the tick. The hint may be early
    // (a cancelled timer), never late: at worst one wake-up finds nothing due.
    uint64_t wait_ns = 0;
    const uint64_t* timeout = nullptr;
    if (const uint64_t due = timers_.next_expiry_hint(); due != UINT64_MAX && due < env_.now_ns + kTickNs) {
      const uint64_t now = monotonic_ns();
      wait_ns = due > now ? due - now : 0;
      timeout = &wait_ns;
    }
    const int ret = ring_.submit_and_wait_one(timeout);
    if (ret == -EBADR) {
      on_completions_lost();
    } else if (ret < 0) {
      log(LogLevel::kError, "worker %u: io_uring_submit_and_wait: %s", env_.worker, strerror(-ret));
    }
    env_.now_ns = monotonic_ns();
    env_.now_us = micros32(env_.now_ns);
    ring_.reap([this](const io_uring_cqe* cqe) { handle(cqe); });
    if (ring_.cq_overflow_pending()) env_.stats.cq_overflows.add();
    driver_.after_batch();
    timers_.advance(env_.now_ns, [this](uint32_t id) { driver_.on_timer(id); });
    if (env_.draining && driver_.live() == 0) break;
  }
}

void Worker::handle(const io_uring_cqe* cqe) {
  const uint64_t data = cqe->user_data;
  const Tag tag = tag_of(data);
  const uint32_t index = index_of(data);
  const Op op = op_of(tag);
  if (op != Op::kCount && env_.config.metrics_enabled) {
    env_.stats.op(op).observe_ns(elapsed_ns_since(time_of(data), env_.now_ns));
  }
  if (proxy::is_session_tag(tag)) return driver_.on_completion(tag, index, cqe->res, cqe->flags);
  // A message from another ring: what its sender wrote before sending is ours to read now.
  if (tag == Tag::kHandoff || tag == Tag::kLostHandoff || tag == Tag::kControl) uring::handoff_acquire(ring_.fd());
  switch (tag) {
    case Tag::kHandoff: return on_handoff(cqe->res, index, time_of(data));
    case Tag::kLostHandoff: return audit_.on_lost_handoff(index);
    case Tag::kAuditProbe: return audit_.on_probe(index, cqe->res);
    case Tag::kControl: return on_control(index);
    case Tag::kDiagInstall: return diagnostics_.on_install(index, cqe->res);
    case Tag::kTick: return on_tick();
    case Tag::kQueuePoll: return driver_.on_queue_poll();
    case Tag::kQuietSockopt:
      return;  // a failure cancels the linked request, which reports it
    case Tag::kQuietConnectTimeout:
      return;  // the connect it cancelled reports -ECANCELED
    case Tag::kQuietMessage:
      return;  // only a failure gets here: the acceptor is gone (shutting down)
    case Tag::kQuietClose:
      if (cqe->res < 0) log(LogLevel::kWarning, "worker %u: close_direct: %s", env_.worker, strerror(-cqe->res));
      return;
    default:
      log(LogLevel::kWarning, "worker %u: completion with unknown tag %u", env_.worker, static_cast<unsigned>(tag));
      return;
  }
}

void Worker::on_handoff(int res, uint32_t listener, uint32_t stamp_us) {
  if (res < 0) return;  // nothing arrived; the acceptor counted its own side
  if (env_.config.metrics_enabled) env_.stats.handoff_latency.observe_ns(elapsed_ns_since(stamp_us, env_.now_ns));
  driver_.open(res, static_cast<uint16_t>(listener), stamp_us);
}

void Worker::on_control(uint32_t what) {
  if (what == kControlDiagnostics) return diagnostics_.start();
  if (!env_.draining) {
    env_.draining = true;
    drain_deadline_ns_ = env_.now_ns + to_ns(env_.config.drain_timeout);
  }
}

void Worker::arm_tick() {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_timeout(sqe, &tick_ts_, 0, 0);
  sqe->user_data = encode(Tag::kTick, 0, env_.now_us);
}

void Worker::on_tick() {
  // The tick wakes the loop, which fires the timers that are due; here only what is periodic.
  driver_.on_tick();
  if (env_.draining && env_.now_ns >= drain_deadline_ns_ && driver_.live() > 0) driver_.close_all(CloseReason::k_drain);
  access_.flush();
  env_.stats.cq_dropped.set(ring_.cq_dropped());
  if (!(env_.draining && driver_.live() == 0)) arm_tick();
}

void Worker::on_completions_lost() {
  env_.stats.cq_dropped.set(ring_.cq_dropped());
  if (!env_.completions_lost) {
    log(LogLevel::kWarning, "worker %u: the kernel dropped completions; recovering", env_.worker);
  }
  // From now on a closing session is freed after a grace period even if it still counts
  // completions in flight, and a stale completion is recognised by its generation.
  driver_.on_completions_lost();
  // A lost hand-off leaves a client in an unclaimed slot: look for it.
  audit_.on_lost_handoff(0);
}

}  // namespace ringlb
