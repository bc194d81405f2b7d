// The acceptor: owns the listening sockets (direct descriptors made and configured entirely
// through io_uring), accepts with multishot accept into direct slots, and hands each connection
// to a worker ring with msg_ring, closing its own slot once the hand-off completes. The control
// socket (server/control/control_server.h) runs on the same ring.
#pragma once

#include <sys/signalfd.h>

#include <functional>
#include <string>
#include <vector>

#include "server/address.h"
#include "server/control/control_server.h"
#include "server/control/protocol.h"
#include "server/shared_state.h"
#include "server/uring/file_table.h"
#include "server/uring/ring.h"
#include "server/user_data.h"

namespace ringlb {

class Acceptor {
 public:
  explicit Acceptor(SharedState& shared);
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // Creates the ring (in the calling thread, which must be the one that calls run()) and the
  // listening sockets: an inherited socket whose address matches a --listen address is
  // registered as a direct descriptor (its fd is closed here); the others are made through
  // io_uring. On failure returns -errno and *error names the address and the reason.
  int open_listeners(const std::vector<InheritedListener>& inherited, std::string* error);
  // Serves the control socket at `path` on this ring. 0 or -errno (with *error).
  int open_control(const std::string& path, std::string* error);
  // Called on SIGHUP, in the acceptor's thread.
  void set_reload(std::function<void()> reload) { reload_ = std::move(reload); }
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
  // listeners.cc: a listening socket for `listen`, made through io_uring. Its slot or -errno.
  int make_listener(const ListenConfig& listen, Address* bound, std::string* error);
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
