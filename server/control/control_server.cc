#include "server/control/control_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "server/base/clock.h"
#include "server/base/log.h"
#include "server/control/backends_table.h"
#include "server/control/command.h"
#include "server/control/json_answers.h"
#include "server/control/protocol.h"
#include "server/control/runtime_api.h"
#include "server/uring/compat.h"

namespace ringlb {
namespace {

constexpr unsigned long long seconds(uint64_t ns) { return ns / 1'000'000'000ULL; }

void set_deadline(__kernel_timespec* t, uint64_t after_ns) {
  const uint64_t at = monotonic_ns() + after_ns;
  t->tv_sec = static_cast<long long>(at / 1'000'000'000ULL);
  t->tv_nsec = static_cast<long long>(at % 1'000'000'000ULL);
}

// Closes a client's socket. The shutdown first ends its recv or send in flight at once (the ring
// holds its own reference to the socket, so a close alone would leave them waiting).
void close_socket(int fd) {
  shutdown(fd, SHUT_RDWR);
  close(fd);
}

}  // namespace

ControlServer::~ControlServer() {
  for (Client& c : clients_) {
    if (c.fd >= 0) close_socket(c.fd);
  }
  if (fd_ >= 0) {
    close(fd_);
    unlink(shared_.config.control_socket.c_str());
  }
}

Status ControlServer::open(const std::string& path, std::vector<int> listener_slots, std::vector<Address> bound) {
  const int fd = listen_unix(path);
  if (fd < 0) return Status::error("cannot serve the control socket " + path + ": " + strerror(-fd));
  fd_ = fd;
  listener_slots_ = std::move(listener_slots);
  bound_ = std::move(bound);
  arm_accept();
  return {};
}

bool ControlServer::idle() const {
  for (const Client& c : clients_) {
    if (c.state != State::kFree) return false;
  }
  return true;
}

bool ControlServer::handle(const io_uring_cqe* cqe, uint32_t now_us) {
  now_us_ = now_us;
  const uint32_t index = index_of(cqe->user_data);
  switch (tag_of(cqe->user_data)) {
    case Tag::kControlAccept:
      on_accept(cqe->res, cqe->flags);
      return true;
    case Tag::kControlRecv:
      if (op_done(index)) on_recv(index, cqe->res);
      return true;
    case Tag::kControlSend:
      if (op_done(index)) on_answer_sent(index, cqe->res);
      return true;
    case Tag::kControlRecvTimeout:
    case Tag::kControlSendTimeout:
      // It fired (the operation it guards reports -ECANCELED) or was disarmed.
      op_done(index);
      return true;
    case Tag::kInstall:
      on_install(index, cqe->res);
      return true;
    case Tag::kDiagDone:
      uring::handoff_acquire(ring_.fd());  // the worker's message (its text is under a lock too)
      on_diagnostics_done();
      return true;
    case Tag::kDiagRequest:
      // The message did not reach that worker (it has stopped): it will not answer, so count
      // it as answered with nothing rather than leave the ctl clients waiting.
      on_diagnostics_done();
      return true;
    case Tag::kStatusRequest:
      on_status_request(cqe->res);
      return true;
    default:
      return false;
  }
}

bool ControlServer::op_done(uint32_t c) {
  Client& cl = clients_[c];
  --cl.in_flight;
  if (cl.state != State::kClosed) return true;
  if (cl.in_flight == 0) cl = Client{};  // nothing points into it any more: free
  return false;
}

void ControlServer::set_draining() {
  draining_ = true;
  for (uint32_t c = 0; c < kMaxClients; ++c) {
    if (clients_[c].state != State::kReading) continue;
    stats_.control_dropped(metrics::ControlDrop::k_busy);
    static const char kBusy[] = "busy\n";
    send(clients_[c].fd, kBusy, sizeof(kBusy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    end_client(c);
  }
}

void ControlServer::accepts_stopped() {
  // Accepts of two processes on one listening socket are exclusive waiters: a client wakes only
  // the first, ours. Cancelled after such a wake-up, ours accepts nothing and the new process is
  // never woken: that client would wait in the queue until the next one arrives. So the new
  // process arms its accepts only after this close, and an accept armed then looks at the queue
  // before it waits (tests/uring/shared_accept_test).
  accepts_over_ = true;
  if (takeover_ >= 0 && clients_[takeover_].state == State::kHandingOver) end_client(takeover_);
}

void ControlServer::arm_accept() {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_multishot_accept(sqe, fd_, nullptr, nullptr, SOCK_CLOEXEC);
  sqe->user_data = data(Tag::kControlAccept, 0);
}

void ControlServer::turn_away(int fd) {
  // A fresh connection's socket buffer is empty: these few bytes always fit.
  static const char kBusy[] = "busy\n";
  stats_.control_dropped(metrics::ControlDrop::k_busy);
  send(fd, kBusy, sizeof(kBusy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  close(fd);
}

void ControlServer::on_accept(int res, uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE) && fd_ >= 0 && !draining_) arm_accept();
  if (res < 0) return;
  if (draining_) return turn_away(res);
  uint32_t c = 0;
  while (c < kMaxClients && clients_[c].state != State::kFree) ++c;
  if (c == kMaxClients) return turn_away(res);
  Client& cl = clients_[c];
  cl.fd = res;
  cl.state = State::kReading;
  set_deadline(&cl.deadline, kCommandDeadlineNs);
  arm_recv(c);
}

void ControlServer::arm_recv(uint32_t c) {
  Client& cl = clients_[c];
  // The recv and its timeout are one chain: they must reach the kernel in the same submission.
  ring_.reserve(2);
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_recv(sqe, cl.fd, cl.buf, sizeof(cl.buf), 0);
  sqe->flags |= IOSQE_IO_LINK;
  sqe->user_data = data(Tag::kControlRecv, c);
  sqe = ring_.sqe();
  io_uring_prep_link_timeout(sqe, &cl.deadline, IORING_TIMEOUT_ABS);
  sqe->user_data = data(Tag::kControlRecvTimeout, c);
  cl.in_flight += 2;
}

void ControlServer::end_client(uint32_t c) {
  Client& cl = clients_[c];
  if (cl.fd >= 0) close_socket(cl.fd);
  cl.fd = -1;
  if (takeover_ == static_cast<int>(c)) takeover_ = -1;
  cl.state = State::kClosed;
  if (cl.in_flight == 0) cl = Client{};
}

void ControlServer::on_recv(uint32_t c, int res) {
  Client& cl = clients_[c];
  if (res == -ECANCELED) {  // its deadline
    if (cl.state == State::kAwaitReady) {
      log(LogLevel::kWarning, "takeover aborted: the new process did not say ready within %llus; still serving",
          seconds(kReadyDeadlineNs));
    } else {
      stats_.control_dropped(metrics::ControlDrop::k_command_timeout);
      log(LogLevel::kWarning, "control: a client sent no command within %llus; closed", seconds(kCommandDeadlineNs));
    }
    return end_client(c);
  }
  if (res <= 0) {
    if (cl.state == State::kAwaitReady) {
      log(LogLevel::kWarning, "takeover aborted: the new process went away; still serving");
    }
    return end_client(c);
  }
  cl.line.append(cl.buf, static_cast<size_t>(res));
  const size_t nl = cl.line.find('\n');
  if (nl == std::string::npos) {
    if (cl.line.size() > 1024) return end_client(c);
    return arm_recv(c);
  }
  const std::string command = cl.line.substr(0, nl);
  cl.line.erase(0, nl + 1);
  if (cl.state == State::kAwaitReady) return on_ready(c, command);
  on_command(c, command);
}

void ControlServer::on_command(uint32_t c, const std::string& command) {
  Client& cl = clients_[c];
  control::Command cmd;
  // A refusal as the client asked for it: JSON if the line began with "json".
  const bool json = command.compare(0, 5, "json ") == 0 || command == "json";
  const auto refuse = [&](const std::string& why) {
    return answer(c, json ? control::error_json(why) : "error: " + why + "\n");
  };
  if (Status s = control::parse_command(command, &cmd); !s.ok()) {
    log(LogLevel::kWarning, "control: command refused: %s", s.message().c_str());
    cl.answer_what = "error";
    return refuse(s.message());
  }
  cl.answer_what = control::verb_name(cmd.verb);
  cl.json = cmd.json;
  switch (cmd.verb) {
    case control::Verb::kListeners:
      if (cmd.json) return refuse("listeners (a takeover's) has no JSON form");
      if (takeover_running()) {
        log(LogLevel::kWarning, "control: a second takeover refused: one is in progress");
        return refuse("another takeover is in progress");
      }
      return start_takeover(c);
    case control::Verb::kConnections:
      if (shared_.workers.empty()) {
        return answer(c, cmd.json ? control::connections_json_answer("") : "no live connections\n");
      }
      cl.state = State::kDiagnostics;
      return start_diagnostics();
    case control::Verb::kBackends:
      if (cmd.json) return answer(c, control::backends_json_answer(shared_));
      return answer(c, control::format_backends(control::backend_statuses(shared_)));
    case control::Verb::kOverrides:
      if (cmd.json) return answer(c, control::overrides_json_answer(*shared_.publisher));
      return answer(c, control::overrides_as_commands(*shared_.publisher));
    default:
      break;
  }
  // A backend command: it republishes the cluster, so every worker has it from its next client.
  if (takeover_running()) {
    log(LogLevel::kWarning, "control: %s refused: a takeover is in progress", control::verb_name(cmd.verb));
    return refuse("a takeover is in progress: the new process has already copied the runtime state, "
                  "so change it there once it serves");
  }
  std::string done;
  if (Status s = control::apply_backend_command(*shared_.publisher, cmd, &done); !s.ok()) {
    log(LogLevel::kWarning, "control: %s refused: %s", control::verb_name(cmd.verb), s.message().c_str());
    return refuse(s.message());
  }
  // `done` names the backend ("web 10.0.0.2:8080: weight 0, drain"), as the command does.
  const size_t named = done.find(": ");
  control::Command plain = cmd;
  plain.json = false;
  log(LogLevel::kInfo, "control: %s: %s", control::format_command(plain).c_str(),
      named == std::string::npos ? done.c_str() : done.c_str() + named + 2);
  answer(c, cmd.json ? control::change_json_answer(shared_, cmd, done) : "ok: " + done + "\n");
}

void ControlServer::start_diagnostics() {
  if (diagnostics_pending_ > 0) return;  // a round is under way: its answer serves this one too
  diagnostics_pending_ = static_cast<uint32_t>(shared_.workers.size());
  for (const auto& w : shared_.workers) {
    io_uring_sqe* sqe = ring_.sqe();
    uring::prep_msg_ring_data(sqe, w->ring_fd, 0, encode(Tag::kControl, kControlDiagnostics, now_us_));
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    sqe->user_data = data(Tag::kDiagRequest, 0);
  }
}

void ControlServer::serve_in_process() { arm_status_request(); }

void ControlServer::arm_status_request() {
  const int fd = shared_.diagnostics_requests.event_fd();
  if (fd < 0) return;
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_read(sqe, fd, &status_wake_, sizeof(status_wake_), 0);
  sqe->user_data = data(Tag::kStatusRequest, 0);
}

void ControlServer::on_status_request(int res) {
  if (res != sizeof(status_wake_)) {
    log(LogLevel::kWarning, "control: reading the status API's requests: %s; /api/v1/connections stops answering",
        strerror(-res));
    return;
  }
  arm_status_request();
  // Every ticket taken so far is answered by the round that ends next.
  status_upto_ = shared_.diagnostics_requests.requested();
  if (shared_.workers.empty()) {
    shared_.diagnostics_requests.answer(status_upto_, "");
    status_upto_ = 0;
    return;
  }
  start_diagnostics();
}

void ControlServer::start_takeover(uint32_t c) {
  // Regular fds for the listening direct descriptors, only for as long as it takes to send them.
  takeover_ = static_cast<int>(c);
  clients_[c].state = State::kInstalling;
  install_fds_.assign(listener_slots_.size(), -1);
  install_bound_ = bound_;  // a reload meanwhile changes bound_, not what is being installed
  installs_pending_ = static_cast<uint32_t>(listener_slots_.size());
  for (uint32_t i = 0; i < listener_slots_.size(); ++i) {
    io_uring_sqe* sqe = ring_.sqe();
    uring::prep_fixed_fd_install(sqe, listener_slots_[i], 0);
    sqe->user_data = data(Tag::kInstall, i);
  }
  if (installs_pending_ == 0) on_install(0, -EBADF);
}

void ControlServer::on_install(uint32_t listener, int res) {
  if (listener < install_fds_.size()) {
    install_fds_[listener] = res;
    if (res >= 0) stats_.installed(metrics::InstallReason::k_takeover);
  }
  if (installs_pending_ > 0 && --installs_pending_ > 0) return;
  bool ok = !install_fds_.empty() && takeover_ >= 0;
  for (int fd : install_fds_) ok = ok && fd >= 0;
  // A few lines and the descriptors, to a new process that is waiting for exactly this: they fit
  // the socket buffer, and if they did not, the takeover fails rather than block the acceptor.
  const int ret = ok ? send_listeners(clients_[takeover_].fd, install_bound_, install_fds_, MSG_DONTWAIT) : -EBADF;
  // The receiver holds its own references now: these fds were only the envelope.
  for (int fd : install_fds_) {
    if (fd >= 0) close(fd);
  }
  install_fds_.clear();
  if (takeover_ < 0) return;  // the client is gone
  const uint32_t c = static_cast<uint32_t>(takeover_);
  if (ret < 0) {
    log(LogLevel::kWarning, "takeover: cannot send the listeners: %s; still serving", strerror(-ret));
    return end_client(c);
  }
  log(LogLevel::kInfo, "takeover: sent %zu listeners; waiting for the new process", install_bound_.size());
  clients_[c].state = State::kAwaitReady;
  set_deadline(&clients_[c].deadline, kReadyDeadlineNs);
  arm_recv(c);
}

void ControlServer::on_ready(uint32_t c, const std::string& command) {
  if (command != "ready") {
    log(LogLevel::kWarning, "takeover aborted: unexpected '%s'; still serving", command.c_str());
    return end_client(c);
  }
  log(LogLevel::kInfo, "listeners handed over; no longer accepting, draining for up to %lldms",
      static_cast<long long>(shared_.config.drain_timeout.count()));
  clients_[c].state = State::kHandingOver;  // the connection closes in accepts_stopped()
  // Already drained (a SIGTERM came while the listeners were being handed over): our accepts
  // are over, so the new process may arm its own now, and this process may exit.
  if (accepts_over_) end_client(c);
  if (fd_ >= 0) {
    close(fd_);  // the new process serves the control path from now on
    fd_ = -1;
  }
  if (on_handed_over_) on_handed_over_();
}

void ControlServer::on_diagnostics_done() {
  if (diagnostics_pending_ == 0 || --diagnostics_pending_ > 0) return;
  std::string text;
  for (const auto& w : shared_.workers) {
    std::lock_guard<std::mutex> lock(w->diagnostics_mu);
    text += w->diagnostics;
  }
  if (status_upto_ > 0) {
    shared_.diagnostics_requests.answer(status_upto_, text);
    status_upto_ = 0;
  }
  const std::string json = control::connections_json_answer(text);
  if (text.empty()) text = "no live connections\n";
  for (uint32_t c = 0; c < kMaxClients; ++c) {
    if (clients_[c].state == State::kDiagnostics) answer(c, clients_[c].json ? json : text);
  }
}

void ControlServer::answer(uint32_t c, std::string text) {
  // The answer can be larger than the socket buffer, and the client may never read it: sent
  // from the ring, never blocking the acceptor, and dropped at a deadline.
  Client& cl = clients_[c];
  cl.answer = std::move(text);
  cl.state = State::kAnswering;
  cl.answer_sent = 0;
  set_deadline(&cl.deadline, kAnswerDeadlineNs);
  send_answer(c);
}

void ControlServer::send_answer(uint32_t c) {
  Client& cl = clients_[c];
  // The send and its timeout are one chain: they must reach the kernel in the same submission.
  ring_.reserve(2);
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_send(sqe, cl.fd, cl.answer.data() + cl.answer_sent, cl.answer.size() - cl.answer_sent,
                     MSG_NOSIGNAL);
  sqe->flags |= IOSQE_IO_LINK;
  sqe->user_data = data(Tag::kControlSend, c);
  sqe = ring_.sqe();
  io_uring_prep_link_timeout(sqe, &cl.deadline, IORING_TIMEOUT_ABS);
  sqe->user_data = data(Tag::kControlSendTimeout, c);
  cl.in_flight += 2;
}

void ControlServer::on_answer_sent(uint32_t c, int res) {
  Client& cl = clients_[c];
  if (res <= 0) {
    if (res == -ECANCELED) {
      stats_.control_dropped(metrics::ControlDrop::k_answer_timeout);
      log(LogLevel::kWarning, "control: the client did not take the %s answer within %llus; dropped",
          cl.answer_what, seconds(kAnswerDeadlineNs));
    }
    return end_client(c);
  }
  cl.answer_sent += static_cast<size_t>(res);
  if (cl.answer_sent < cl.answer.size()) return send_answer(c);  // a short write: carry on
  end_client(c);
}

}  // namespace ringlb
