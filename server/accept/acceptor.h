// The acceptor: owns the listening sockets (direct descriptors made and configured entirely
// through io_uring), accepts with multishot accept into direct slots, and hands each connection
// to a worker ring with msg_ring, closing its own slot once the hand-off completes. The control
// socket (server/control/control_server.h) runs on the same ring.
#pragma once

#include <sys/signalfd.h>

#include <functional>
#include <string>
#include <vector>

#include "server/base/address.h"
#include "server/base/error.h"
#include "server/control/control_server.h"
#include "server/control/protocol.h"
#include "server/runtime/shared_state.h"
#include "server/uring/file_table.h"
#include "server/uring/ring.h"
#include "server/uring/user_data.h"

namespace ringlb {

class Acceptor {
 public:
  explicit Acceptor(SharedState& shared);
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // Creates the ring (in the calling thread, which must be the one that calls run()) and the
  // listening sockets: an inherited socket whose address matches a --listen address is
  // registered as a direct descriptor (its fd is closed here); the others are made through
  // io_uring. An error names the address and the reason (a busy address is bad input; a ring
  // the kernel refuses, a failure).
  Status open_listeners(const std::vector<InheritedListener>& inherited);
  // Serves the control socket at `path` on this ring.
  Status open_control(const std::string& path);
  // Called on SIGHUP, in the acceptor's thread, outside the reaping of completions (so that the
  // reload may bind listeners through this ring: see apply_listeners).
  void set_reload(std::function<void()> reload) { reload_ = std::move(reload); }

  // A reload's listeners. plan_listeners matches `fresh`'s listeners to the running ones by name:
  // one whose address, accept-proxy, cluster and SNI routes are the same keeps its index (its
  // other settings are published as its policy); any other is added under a new index (a
  // changed one is removed as well). It sets shared.listener_configs/listener_live and the new
  // indexes' routes, addresses and metric names (nothing accepts on them yet). An error says why
  // the reload is refused (nothing changed).
  struct ListenerPlan {
    std::vector<uint16_t> indexes;  // the listener index of each fresh.listen entry
    std::vector<uint16_t> added;    // new indexes, in fresh.listen order
    std::vector<uint16_t> removed;  // indexes that stop accepting
    size_t configs_before = 0;      // shared.listener_configs.size() before the plan
  };
  Status plan_listeners(const Config& fresh, ListenerPlan* plan);
  // The reload was refused after plan_listeners (by publish_config): undoes it.
  void cancel_listeners(const ListenerPlan& plan);
  // Once the policies (with the new indexes, the removed ones marked) are published: stops
  // accepting on the removed listeners, then binds the added ones and arms their accepts. A bind
  // failure fails that listener only: returned as a log line, its index left unused.
  std::vector<std::string> apply_listeners(const ListenerPlan& plan);
  int ring_fd() const { return ring_.fd(); }
  // The bound addresses (port 0 resolved), in --listen order.
  const std::vector<Address>& bound() const { return bound_; }

  // Serves until SIGTERM or SIGINT arrives on `signal_fd` (a signalfd), then stops accepting,
  // tells every worker to drain and returns once its own completions are done.
  int run(int signal_fd);

 private:
  struct Listener {
    int slot = -1;
    uint32_t last_stamp_us = 0;  // previous completion (or arming) of its multishot accept
    bool armed = false;          // its multishot accept may still post completions
    bool removed = false;        // by a reload (or never bound): its slot is no longer its own
  };
  struct Pending {
    uint32_t accept_us = 0;  // when the connection was accepted: the hand-off latency starts here
    uint16_t tries = 0;
    uint16_t worker = 0;
    uint32_t listener = 0;  // which --listen accepted it (the worker needs its address family)
  };
  // A worker holds a descriptor it got no completion for (msg_ring -EOVERFLOW): it must be told
  // with a kLostHandoff message, which is retried until it gets there.
  struct LostHandoff {
    uint16_t worker = 0;
    uint32_t listener = 0;
  };

  // A test-only setting from the environment: a positive number, or 0 when unset or invalid.
  static uint32_t env_count(const char* name);
  // listeners.cc: a listening socket for `listen`, made through io_uring: its slot.
  StatusOr<int> make_listener(const ListenConfig& listen, Address* bound);
  // One operation through this ring, waited for; other completions that arrive meanwhile are
  // kept for the event loop (deferred_). Its result.
  int run_sync(const std::function<void(io_uring_sqe*)>& prep);
  void handle(const io_uring_cqe* cqe);
  // The acceptor's listening slots and addresses, for a takeover.
  void update_control();
  void arm_accept(uint32_t listener);
  void on_accept(uint32_t listener, int res, uint32_t flags);
  void dispatch(int slot, const Pending& pending, int not_worker);
  void on_msg_ring_done(uint32_t index, int res);
  void on_msg_ring_failed(int slot, int res);
  // Queues the kLostHandoff message for `lost` (sent at the end of this loop iteration).
  void tell_lost(LostHandoff lost) { lost_unsent_.push_back(lost); }
  void send_lost_handoffs();
  void on_lost_message_done(uint32_t index, int res);
  void close_slot(int slot);
  void begin_drain();
  void on_signal(int res, int signal_fd);
  uint64_t data(Tag tag, uint32_t index) const { return encode(tag, index, now_us_); }

  SharedState& shared_;
  metrics::AcceptorStats& stats_;
  uring::Ring ring_;
  uring::FileTable table_;
  ControlServer control_;
  std::vector<Listener> listeners_;
  std::vector<Address> bound_;
  std::vector<Pending> pending_;  // by acceptor slot
  std::vector<LostHandoff> lost_unsent_;   // kLostHandoff messages to send
  std::vector<LostHandoff> lost_in_flight_;  // sent on their own, by the index in their user_data
  std::vector<uint32_t> lost_free_;          // free entries of lost_in_flight_
  uint32_t in_flight_ = 0;  // drain-time completions still to come
  uint32_t sample_ = 0;
  uint32_t accepts_armed_ = 0;  // listeners whose multishot accept has not posted its last CQE
  unsigned next_worker_ = 0;
  bool draining_ = false;
  bool drain_sent_ = false;
  uint64_t now_ns_ = 0;
  uint32_t now_us_ = 0;
  signalfd_siginfo siginfo_{};
  std::function<void()> reload_;
  bool reload_pending_ = false;        // SIGHUP seen in the reap: reload after it
  std::vector<io_uring_cqe> deferred_;  // completions run_sync reaped for the event loop
  int signal_fd_ = -1;

  // Test-only fault injection (environment, read once at start-up; 0 = off).
  // RINGLB_FAULT_LOST_HANDOFF_EVERY=N: every Nth hand-off is sent with IORING_MSG_RING_CQE_SKIP,
  // leaving the worker with a descriptor and no completion, as a msg_ring -EOVERFLOW does.
  uint32_t fault_lost_every_ = 0;
  // RINGLB_FAULT_HANDOFF_FAIL_EVERY=N: the first attempt of every Nth hand-off is sent to this
  // acceptor's own ring, which the kernel refuses (-EINVAL): a real msg_ring failure, so the
  // linked close is cancelled and the hand-off retried like any other failure.
  uint32_t fault_fail_every_ = 0;
  uint32_t handoffs_ = 0;  // first attempts, for the fault counters
};

}  // namespace ringlb
