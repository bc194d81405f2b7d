#include "server/control/control_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "server/base/clock.h"
#include "server/control/backends_table.h"
#include "server/control/command.h"
#include "server/control/protocol.h"
#include "server/control/runtime_api.h"
#include "server/uring/compat.h"
#include "server/base/log.h"

namespace ringlb {

ControlServer::~ControlServer() {
  if (conn_ >= 0) close(conn_);
  if (fd_ >= 0) {
    close(fd_);
    unlink(shared_.config.control_socket.c_str());
  }
}

int ControlServer::open(const std::string& path, std::vector<int> listener_slots,
                        std::vector<Address> bound, std::string* error) {
  const int fd = listen_unix(path);
  if (fd < 0) {
    *error = "cannot serve the control socket " + path + ": " + strerror(-fd);
    return fd;
  }
  fd_ = fd;
  listener_slots_ = std::move(listener_slots);
  bound_ = std::move(bound);
  arm_accept();
  return 0;
}

bool ControlServer::handle(const io_uring_cqe* cqe, uint32_t now_us) {
  now_us_ = now_us;
  switch (tag_of(cqe->user_data)) {
    case Tag::kControlAccept:
      on_accept(cqe->res, cqe->flags);
      return true;
    case Tag::kControlRecv:
      on_recv(cqe->res);
      return true;
    case Tag::kInstall:
      on_install(index_of(cqe->user_data), cqe->res);
      return true;
    case Tag::kDiagDone:
      uring::handoff_acquire(ring_.fd());  // the worker's message (its text is under a lock too)
      on_diagnostics_done();
      return true;
    case Tag::kDiagRequest:
      // The message did not reach that worker (it has stopped): it will not answer, so count
      // it as answered with nothing rather than leave the ctl client waiting.
      on_diagnostics_done();
      return true;
    case Tag::kControlSend:
      on_answer_sent(cqe->res);
      return true;
    case Tag::kControlSendTimeout:
      return true;  // it fired (the send it guards reports -ECANCELED) or was disarmed
    default:
      return false;
  }
}

void ControlServer::accepts_stopped() {
  // Accepts of two processes on one listening socket are exclusive waiters: a client wakes only
  // the first, ours. Cancelled after such a wake-up, ours accepts nothing and the new process is
  // never woken: that client would wait in the queue until the next one arrives. So the new
  // process arms its accepts only after this close, and an accept armed then looks at the queue
  // before it waits (tests/uring/shared_accept_test).
  accepts_over_ = true;
  if (state_ == State::kHandingOver) end_client();
}

void ControlServer::arm_accept() {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_multishot_accept(sqe, fd_, nullptr, nullptr, SOCK_CLOEXEC);
  sqe->user_data = data(Tag::kControlAccept, 0);
}

void ControlServer::on_accept(int res, uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE) && fd_ >= 0 && !draining_) arm_accept();
  if (res < 0) return;
  if (conn_ >= 0 || draining_) {
    // One control client at a time; the slow path has no queue.
    static const char kBusy[] = "busy\n";
    send(res, kBusy, sizeof(kBusy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(res);
    return;
  }
  conn_ = res;
  line_.clear();
  state_ = State::kReading;
  arm_recv();
}

void ControlServer::arm_recv() {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_recv(sqe, conn_, buf_, sizeof(buf_), 0);
  sqe->user_data = data(Tag::kControlRecv, 0);
}

void ControlServer::end_client() {
  if (conn_ >= 0) close(conn_);
  conn_ = -1;
  state_ = State::kIdle;
  answer_.clear();
  answer_sent_ = 0;
}

void ControlServer::on_recv(int res) {
  if (conn_ < 0) return;
  if (res <= 0) {
    if (state_ == State::kAwaitReady) {
      log(LogLevel::kWarning, "takeover aborted: the new process went away; still serving");
    }
    return end_client();
  }
  line_.append(buf_, static_cast<size_t>(res));
  const size_t nl = line_.find('\n');
  if (nl == std::string::npos) {
    if (line_.size() > 1024) return end_client();
    return arm_recv();
  }
  const std::string command = line_.substr(0, nl);
  line_.erase(0, nl + 1);
  on_command(command);
}

void ControlServer::on_command(const std::string& command) {
  if (state_ == State::kAwaitReady) {
    if (command != "ready") {
      log(LogLevel::kWarning, "takeover aborted: unexpected '%s'; still serving", command.c_str());
      return end_client();
    }
    log(LogLevel::kInfo, "listeners handed over; no longer accepting, draining for up to %lldms",
        static_cast<long long>(shared_.config.drain_timeout.count()));
    state_ = State::kHandingOver;  // the connection closes in accepts_stopped()
    // Already drained (a SIGTERM came while the listeners were being handed over): our accepts
    // are over, so the new process may arm its own now, and this process may exit.
    if (accepts_over_) end_client();
    if (fd_ >= 0) {
      close(fd_);  // the new process serves the control path from now on
      fd_ = -1;
    }
    if (on_handed_over_) on_handed_over_();
    return;
  }
  control::Command c;
  if (std::string why = control::parse_command(command, &c); !why.empty()) {
    log(LogLevel::kWarning, "control: command refused: %s", why.c_str());
    answer_what_ = "error";
    return answer("error: " + why + "\n");
  }
  answer_what_ = control::verb_name(c.verb);
  switch (c.verb) {
    case control::Verb::kListeners: {
      // Regular fds for the listening direct descriptors, only for as long as it takes to send them.
      state_ = State::kInstalling;
      install_fds_.assign(listener_slots_.size(), -1);
      installs_pending_ = static_cast<uint32_t>(listener_slots_.size());
      for (uint32_t i = 0; i < listener_slots_.size(); ++i) {
        io_uring_sqe* sqe = ring_.sqe();
        uring::prep_fixed_fd_install(sqe, listener_slots_[i], 0);
        sqe->user_data = data(Tag::kInstall, i);
      }
      if (installs_pending_ == 0) on_install(0, -EBADF);
      return;
    }
    case control::Verb::kConnections:
      state_ = State::kDiagnostics;
      diagnostics_pending_ = static_cast<uint32_t>(shared_.workers.size());
      for (const auto& w : shared_.workers) {
        io_uring_sqe* sqe = ring_.sqe();
        uring::prep_msg_ring_data(sqe, w->ring_fd, 0, encode(Tag::kControl, kControlDiagnostics, now_us_));
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        sqe->user_data = data(Tag::kDiagRequest, 0);
      }
      return;
    case control::Verb::kBackends:
      return answer(control::format_backends(control::backend_statuses(shared_)));
    case control::Verb::kOverrides:
      return answer(control::overrides_as_commands(*shared_.publisher));
    default:
      break;
  }
  // A backend command: it republishes the cluster, so every worker has it from its next client.
  std::string done;
  if (std::string why = control::apply_backend_command(*shared_.publisher, c, &done); !why.empty()) {
    log(LogLevel::kWarning, "control: %s refused: %s", control::verb_name(c.verb), why.c_str());
    return answer("error: " + why + "\n");
  }
  // `done` names the backend ("web 10.0.0.2:8080: weight 0, drain"), as the command does.
  const size_t named = done.find(": ");
  log(LogLevel::kInfo, "control: %s: %s", control::format_command(c).c_str(),
      named == std::string::npos ? done.c_str() : done.c_str() + named + 2);
  answer("ok: " + done + "\n");
}

void ControlServer::on_install(uint32_t listener, int res) {
  if (listener < install_fds_.size()) {
    install_fds_[listener] = res;
    if (res >= 0) stats_.installed(metrics::InstallReason::k_takeover);
  }
  if (installs_pending_ > 0 && --installs_pending_ > 0) return;
  bool ok = !install_fds_.empty();
  for (int fd : install_fds_) ok = ok && fd >= 0;
  // A blocking send, but a short one: a few lines and the descriptors, to a new process that is
  // waiting for exactly this.
  int ret = ok ? send_listeners(conn_, bound_, install_fds_) : -EBADF;
  // The receiver holds its own references now: these fds were only the envelope.
  for (int fd : install_fds_) {
    if (fd >= 0) close(fd);
  }
  install_fds_.clear();
  if (ret < 0) {
    log(LogLevel::kWarning, "takeover: cannot send the listeners: %s; still serving", strerror(-ret));
    return end_client();
  }
  log(LogLevel::kInfo, "takeover: sent %zu listeners; waiting for the new process",
      listener_slots_.size());
  state_ = State::kAwaitReady;
  arm_recv();
}

void ControlServer::on_diagnostics_done() {
  if (diagnostics_pending_ == 0 || --diagnostics_pending_ > 0) return;
  if (conn_ < 0) return;
  answer_.clear();
  for (const auto& w : shared_.workers) {
    std::lock_guard<std::mutex> lock(w->diagnostics_mu);
    answer_ += w->diagnostics;
  }
  if (answer_.empty()) answer_ = "no live connections\n";
  answer(std::move(answer_));
}

void ControlServer::answer(std::string text) {
  // The answer can be larger than the socket buffer, and the client may never read it: sent
  // from the ring, never blocking the acceptor, and dropped at a deadline.
  answer_ = std::move(text);
  state_ = State::kAnswering;
  answer_sent_ = 0;
  const uint64_t deadline = monotonic_ns() + kAnswerDeadlineNs;
  answer_deadline_.tv_sec = static_cast<long long>(deadline / 1'000'000'000ULL);
  answer_deadline_.tv_nsec = static_cast<long long>(deadline % 1'000'000'000ULL);
  send_answer();
}

void ControlServer::send_answer() {
  // The send and its timeout are one chain: they must reach the kernel in the same submission.
  ring_.reserve(2);
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_send(sqe, conn_, answer_.data() + answer_sent_, answer_.size() - answer_sent_,
                     MSG_NOSIGNAL);
  sqe->flags |= IOSQE_IO_LINK;
  sqe->user_data = data(Tag::kControlSend, 0);
  sqe = ring_.sqe();
  io_uring_prep_link_timeout(sqe, &answer_deadline_, IORING_TIMEOUT_ABS);
  sqe->user_data = data(Tag::kControlSendTimeout, 0);
}

void ControlServer::on_answer_sent(int res) {
  if (conn_ < 0 || state_ != State::kAnswering) return;
  if (res <= 0) {
    if (res == -ECANCELED) {
      log(LogLevel::kWarning, "control: the client did not take the %s answer within %llus; dropped", answer_what_,
          static_cast<unsigned long long>(kAnswerDeadlineNs / 1'000'000'000ULL));
    }
    return end_client();
  }
  answer_sent_ += static_cast<size_t>(res);
  if (answer_sent_ < answer_.size()) return send_answer();  // a short write: carry on
  end_client();
}

}  // namespace ringlb
