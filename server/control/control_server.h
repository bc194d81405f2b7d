// The acceptor's side of the control socket (--control-socket PATH), driven by the acceptor's
// ring. It serves up to kMaxClients clients at once; one more is answered "busy" and closed. A
// client has kCommandDeadlineNs from connecting to send its whole command line and
// kAnswerDeadlineNs to take the answer, else it is closed: both are timeouts linked to its recv and
// send on the ring, so no client can hold up the acceptor or another client. The commands:
//   "listeners"   takeover: installs regular fds for the listening direct descriptors, sends
//                 them (protocol.h), waits for "ready" (kReadyDeadlineNs), then tells the acceptor
//                 to drain, and closes the connection once the acceptor's accepts are over. One
//                 at a time: meanwhile another "listeners" is refused, and so are the commands
//                 that change a backend (the new process copied the runtime state before it
//                 asked: a change now would not carry over); the reading commands are served;
//   "connections" asks every worker for its diagnostics (clients asking meanwhile share the
//                 round, and so does the status API: serve_in_process) and sends the text back;
//   "backends", "overrides", and the backend commands (set-weight, drain, disable, enable:
//                 command.h) answer at once (backends_table.h: state, weight, checks); an answer
//                 starting "error: " is a refusal (a malformed command, an unknown name), and
//                 nothing changed.
// Each command after the word "json" is answered with one JSON object (json_answers.h).
// When the acceptor drains (SIGTERM, or a takeover's hand-over) the clients still owing their
// command are told "busy" and closed, as new ones are; answers under way finish within their
// deadline, and a takeover under way goes on. Everything here runs in the acceptor's thread.
#pragma once

#include <linux/time_types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "metrics/stats.h"
#include "server/base/address.h"
#include "server/base/error.h"
#include "server/runtime/shared_state.h"
#include "server/uring/ring.h"
#include "server/uring/user_data.h"

namespace ringlb {

class ControlServer {
 public:
  // A few operators and scripts at once, and a takeover beside them; the bound keeps a stuck
  // script from piling up descriptors.
  static constexpr uint32_t kMaxClients = 8;
  // From connecting to the end of the command line (a slow writer gets no more than a silent one).
  static constexpr uint64_t kCommandDeadlineNs = 5'000'000'000ULL;
  // From the answer's first byte to its last (an answer can be larger than the socket buffer).
  static constexpr uint64_t kAnswerDeadlineNs = 5'000'000'000ULL;
  // From sending the listeners to "ready": the new process starts its workers and waits for
  // etcd (up to 10 s) and DNS meanwhile.
  static constexpr uint64_t kReadyDeadlineNs = 60'000'000'000ULL;

  ControlServer(SharedState& shared, uring::Ring& ring, metrics::AcceptorStats& stats)
      : shared_(shared), ring_(ring), stats_(stats) {}
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Serves the control socket at `path`. `listener_slots` are the acceptor's listening direct
  // descriptors and `bound` their addresses, in --listen order (what a takeover sends).
  Status open(const std::string& path, std::vector<int> listener_slots, std::vector<Address> bound);
  // A reload added or removed listeners: what a takeover sends from now on.
  void set_listeners(std::vector<int> listener_slots, std::vector<Address> bound) {
    listener_slots_ = std::move(listener_slots);
    bound_ = std::move(bound);
  }
  // Called once a new process has taken the listeners over ("ready"): the acceptor drains.
  void set_on_handed_over(std::function<void()> f) { on_handed_over_ = std::move(f); }
  // The acceptor drains: clients that have not sent their command, and those that connect from
  // now on, are turned away.
  void set_draining();
  // The acceptor's accepts have posted their last completions. A takeover's new process waits
  // for this (the connection closing) before it arms its own accepts: see accepts_stopped().
  void accepts_stopped();
  // True when no control client is served and none of their operations is in flight (the
  // acceptor may exit).
  bool idle() const;

  // Serves the status API's requests for connections (SharedState::diagnostics_requests) from
  // now on, whether or not a control socket is open.
  void serve_in_process();

  // Handles a completion whose tag belongs to the control socket; false for any other tag.
  bool handle(const io_uring_cqe* cqe, uint32_t now_us);

 private:
  // kHandingOver: "ready" came; the connection stays open until accepts_stopped().
  // kClosed: the connection is closed, but operations pointing into the entry are in flight.
  enum class State : uint8_t {
    kFree, kReading, kInstalling, kAwaitReady, kHandingOver, kDiagnostics, kAnswering, kClosed
  };
  struct Client {
    int fd = -1;
    State state = State::kFree;
    uint32_t in_flight = 0;  // ring operations (and their linked timeouts) on this entry
    std::string line;
    char buf[256] = {};
    std::string answer;
    size_t answer_sent = 0;
    const char* answer_what = "";  // the command answered (its name, for the log)
    bool json = false;             // "json COMMAND": answered in JSON
    __kernel_timespec deadline{};  // of the recv or send in flight; CLOCK_MONOTONIC, absolute
  };

  uint64_t data(Tag tag, uint32_t index) const { return encode(tag, index, now_us_); }
  bool takeover_running() const { return takeover_ >= 0 || installs_pending_ > 0; }
  void arm_accept();  // multishot, on fd_
  void on_accept(int res, uint32_t flags);
  // Writes "busy" to a client (never blocking) and closes it.
  void turn_away(int fd);
  // One of client c's operations completed: false if the client is closed (the entry is freed
  // once its last operation is in).
  bool op_done(uint32_t c);
  // A recv on client c, linked to a timeout at its deadline.
  void arm_recv(uint32_t c);
  void on_recv(uint32_t c, int res);
  void on_command(uint32_t c, const std::string& command);
  void on_ready(uint32_t c, const std::string& command);
  void start_takeover(uint32_t c);
  void on_install(uint32_t listener, int res);
  // Asks every worker for its diagnostics, unless a round is under way (its answer serves all).
  void start_diagnostics();
  void on_diagnostics_done();
  void arm_status_request();
  void on_status_request(int res);
  // Sends `text` to client c (send_answer), then ends it.
  void answer(uint32_t c, std::string text);
  // Sends what is left of c's answer, linked to a timeout at its deadline.
  void send_answer(uint32_t c);
  void on_answer_sent(uint32_t c, int res);
  void end_client(uint32_t c);

  SharedState& shared_;
  uring::Ring& ring_;
  metrics::AcceptorStats& stats_;
  std::function<void()> on_handed_over_;
  std::vector<int> listener_slots_;
  std::vector<Address> bound_;
  uint32_t now_us_ = 0;
  bool draining_ = false;
  bool accepts_over_ = false;  // accepts_stopped() came (a SIGTERM's drain may precede "ready")

  int fd_ = -1;  // the listening Unix socket (a regular fd)
  std::array<Client, kMaxClients> clients_{};
  int takeover_ = -1;  // the client taking the listeners over, if any
  std::vector<int> install_fds_;
  std::vector<Address> install_bound_;  // the addresses of the listeners being installed
  uint32_t installs_pending_ = 0;
  uint32_t diagnostics_pending_ = 0;  // workers yet to answer this round of "connections"
  // The status API's tickets to answer when this round ends (0: none), and the eventfd's read.
  uint64_t status_upto_ = 0;
  uint64_t status_wake_ = 0;
};

}  // namespace ringlb
