// The acceptor's side of the control socket (--control-socket PATH), driven by the acceptor's
// ring: accepts one client at a time, reads its command line, and answers it:
//   "listeners"   takeover: installs regular fds for the listening direct descriptors, sends
//                 them (protocol.h), waits for "ready", then tells the acceptor to drain,
//                 and closes the connection once the acceptor's accepts are over;
//   "connections" asks every worker for its diagnostics and sends the text back with async
//                 sends on the ring (a client that does not read can never block the acceptor:
//                 it is dropped at a deadline);
//   "backends", "overrides", and the backend commands (set-weight, drain, disable, enable:
//                 command.h) answer at once (backends_table.h: state, weight, checks), the same way; an answer starting "error: " is a
//                 refusal (a malformed command, an unknown name), and nothing changed.
// Everything here runs in the acceptor's thread. Slow paths only.
#pragma once

#include <linux/time_types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "metrics/stats.h"
#include "server/base/address.h"
#include "server/runtime/shared_state.h"
#include "server/uring/ring.h"
#include "server/uring/user_data.h"

namespace ringlb {

class ControlServer {
 public:
  // How long a client gets to take the whole "connections" answer before it is dropped.
  static constexpr uint64_t kAnswerDeadlineNs = 5'000'000'000ULL;

  ControlServer(SharedState& shared, uring::Ring& ring, metrics::AcceptorStats& stats)
      : shared_(shared), ring_(ring), stats_(stats) {}
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Serves the control socket at `path`. `listener_slots` are the acceptor's listening direct
  // descriptors and `bound` their addresses, in --listen order (what a takeover sends).
  // 0 or -errno (with *error).
  int open(const std::string& path, std::vector<int> listener_slots, std::vector<Address> bound,
           std::string* error);
  // A reload added or removed listeners: what a takeover sends from now on.
  void set_listeners(std::vector<int> listener_slots, std::vector<Address> bound) {
    listener_slots_ = std::move(listener_slots);
    bound_ = std::move(bound);
  }
  // Called once a new process has taken the listeners over ("ready"): the acceptor drains.
  void set_on_handed_over(std::function<void()> f) { on_handed_over_ = std::move(f); }
  // The acceptor drains: clients that connect from now on are turned away.
  void set_draining() { draining_ = true; }
  // The acceptor's accepts have posted their last completions. A takeover's new process waits
  // for this (the connection closing) before it arms its own accepts: see accepts_stopped().
  void accepts_stopped();
  // True when no control client is being served (the acceptor may exit).
  bool idle() const { return conn_ < 0; }

  // Handles a completion whose tag belongs to the control socket; false for any other tag.
  bool handle(const io_uring_cqe* cqe, uint32_t now_us);

 private:
  // kHandingOver: "ready" came; the connection stays open until accepts_stopped().
  enum class State : uint8_t { kIdle, kReading, kInstalling, kAwaitReady, kHandingOver, kDiagnostics, kAnswering };

  uint64_t data(Tag tag, uint32_t index) const { return encode(tag, index, now_us_); }
  void arm_accept();  // multishot, on fd_
  void arm_recv();
  void on_accept(int res, uint32_t flags);
  void on_recv(int res);
  void on_command(const std::string& command);
  void on_install(uint32_t listener, int res);
  void on_diagnostics_done();
  // Sends `text` to the client (send_answer), then ends it.
  void answer(std::string text);
  // Sends what is left of answer_ (from answer_sent_), linked to a timeout at answer_deadline_.
  void send_answer();
  void on_answer_sent(int res);
  void end_client();

  SharedState& shared_;
  uring::Ring& ring_;
  metrics::AcceptorStats& stats_;
  std::function<void()> on_handed_over_;
  std::vector<int> listener_slots_;
  std::vector<Address> bound_;
  uint32_t now_us_ = 0;
  bool draining_ = false;
  bool accepts_over_ = false;  // accepts_stopped() came (a SIGTERM's drain may precede "ready")

  int fd_ = -1;    // the listening Unix socket (a regular fd)
  int conn_ = -1;  // the one client being served
  State state_ = State::kIdle;
  std::string line_;
  char buf_[256] = {};
  std::vector<int> install_fds_;
  uint32_t installs_pending_ = 0;
  uint32_t diagnostics_pending_ = 0;
  std::string answer_;
  const char* answer_what_ = "";  // the command answered (its name, for the log)
  size_t answer_sent_ = 0;
  __kernel_timespec answer_deadline_{};  // CLOCK_MONOTONIC, absolute
};

}  // namespace ringlb
