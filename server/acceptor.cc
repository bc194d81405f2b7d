#include "server/acceptor.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "server/clock.h"
#include "server/control.h"
#include "server/uring/compat.h"

namespace ringlb {
namespace {

using metrics::Op;

// Accepted slots wait here only until their hand-off completes.
constexpr unsigned kAcceptSlots = 4096;
// One hand-off in this many posts its success completion, so msg_ring latency is measured.
constexpr uint32_t kSampleEvery = 64;

}  // namespace

Acceptor::Acceptor(SharedState& shared)
    : shared_(shared), stats_(shared.registry->acceptor) {}

int Acceptor::make_listener(const Address& addr, Address* bound, std::string* error) {
  const std::string name = addr.to_string();
  auto fail = [&](const char* step, int ret) {
    *error = "cannot listen on " + name + ": " + step + ": " + strerror(-ret);
    return ret;
  };
  const int slot = uring::run_one(ring_, [&](io_uring_sqe* sqe) {
    io_uring_prep_socket_direct_alloc(sqe, addr.family(), SOCK_STREAM, 0, 0);
  });
  if (slot < 0) return fail("socket", slot);
  static const int kOne = 1;
  auto setopt = [&](int level, int name_opt) {
    return uring::run_one(ring_, [&](io_uring_sqe* sqe) {
      uring::prep_cmd_sock_direct(sqe, uring::kSocketOpSetsockopt, slot, level, name_opt,
                                  const_cast<int*>(&kOne), sizeof(kOne));
    });
  };
  int ret = setopt(SOL_SOCKET, SO_REUSEADDR);
  if (ret < 0) return fail("SO_REUSEADDR", ret);
  // Accepted sockets inherit TCP_NODELAY from the listener: no extra op per connection.
  ret = setopt(IPPROTO_TCP, TCP_NODELAY);
  if (ret < 0) return fail("TCP_NODELAY", ret);
  if (addr.family() == AF_INET6) {
    ret = setopt(IPPROTO_IPV6, IPV6_V6ONLY);
    if (ret < 0) return fail("IPV6_V6ONLY", ret);
  }
  ret = uring::run_one(ring_, [&](io_uring_sqe* sqe) {
    uring::prep_bind_direct(sqe, slot, addr.get(), addr.length);
  });
  if (ret < 0) return fail("bind", ret);
  ret = uring::run_one(ring_, [&](io_uring_sqe* sqe) {
    uring::prep_listen_direct(sqe, slot, static_cast<int>(shared_.config.backlog));
  });
  if (ret < 0) return fail("listen", ret);
  *bound = addr;
  if (addr.port() == 0) {
    // BIND does not report the port it chose; a regular fd, for this one getsockname, does.
    const int fd = uring::run_one(ring_, [&](io_uring_sqe* sqe) {
      uring::prep_fixed_fd_install(sqe, slot, 0);
    });
    if (fd < 0) return fail("fixed_fd_install", fd);
    stats_.installed(metrics::InstallReason::k_listen_port);
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    close(fd);
    *bound = address_from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  }
  return slot;
}

int Acceptor::open_listeners(const std::vector<InheritedListener>& inherited, std::string* error) {
  uring::RingOptions options;
  options.entries = 512;
  options.cq_entries = 8192;
  if (int ret = ring_.init(options); ret < 0) {
    *error = std::string("cannot create the acceptor ring: ") + strerror(-ret);
    return ret;
  }
  const size_t n = shared_.config.listen.size();
  if (int ret = table_.init(ring_, static_cast<unsigned>(n + kAcceptSlots)); ret < 0) {
    *error = std::string("cannot register the acceptor's descriptor table: ") + strerror(-ret);
    return ret;
  }
  pending_.resize(n + kAcceptSlots);
  std::vector<bool> used(inherited.size(), false);
  std::vector<bool> taken_slot(n + kAcceptSlots, false);
  for (const ListenConfig& listen : shared_.config.listen) {
    const Address& addr = listen.address;
    // The same address, or for port 0 the same host: the running process's socket moves here.
    int match = -1;
    for (size_t i = 0; i < inherited.size() && match < 0; ++i) {
      if (used[i] || inherited[i].address.family() != addr.family()) continue;
      Address wanted = addr;
      if (addr.port() == 0) wanted.set_port(inherited[i].address.port());
      if (wanted.to_string() == inherited[i].address.to_string()) match = static_cast<int>(i);
    }
    Address bound;
    int slot;
    if (match >= 0) {
      used[static_cast<size_t>(match)] = true;
      slot = 0;
      while (taken_slot[static_cast<size_t>(slot)]) ++slot;
      if (int ret = table_.install_fd(slot, inherited[static_cast<size_t>(match)].fd); ret < 0) {
        *error = "cannot register the listener inherited for " + addr.to_string() + ": " + strerror(-ret);
        return ret;
      }
      bound = inherited[static_cast<size_t>(match)].address;
    } else {
      slot = make_listener(addr, &bound, error);
      if (slot < 0) return slot;  // the ring's teardown closes the listeners made so far
    }
    taken_slot[static_cast<size_t>(slot)] = true;
    listeners_.push_back({slot, 0});
    bound_.push_back(bound);
  }
  return 0;
}

int Acceptor::open_control(const std::string& path, std::string* error) {
  const int fd = listen_unix(path);
  if (fd < 0) {
    *error = "cannot serve the control socket " + path + ": " + strerror(-fd);
    return fd;
  }
  control_fd_ = fd;
  arm_control_accept();
  return 0;
}

void Acceptor::arm_control_accept() {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_multishot_accept(sqe, control_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  sqe->user_data = data(Tag::kControlAccept, 0);
}

void Acceptor::arm_accept(uint32_t listener) {
  if (listeners_[listener].armed == false) {
    listeners_[listener].armed = true;
    ++accepts_armed_;
  }
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_multishot_accept_direct(sqe, listeners_[listener].slot, nullptr, nullptr, 0);
  sqe->flags |= IOSQE_FIXED_FILE;
  sqe->user_data = data(Tag::kAccept, listener);
  listeners_[listener].last_stamp_us = now_us_;
}

int Acceptor::run(int signal_fd) {
  now_ns_ = monotonic_ns();
  now_us_ = micros32(now_ns_);
  for (uint32_t i = 0; i < listeners_.size(); ++i) arm_accept(i);
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_read(sqe, signal_fd, &siginfo_, sizeof(siginfo_), 0);
  sqe->user_data = data(Tag::kSignal, 0);

  for (;;) {
    if (int ret = ring_.submit_and_wait_one(); ret < 0) {
      fprintf(stderr, "ringlb: acceptor: io_uring_submit_and_wait: %s\n", strerror(-ret));
    }
    now_ns_ = monotonic_ns();
    now_us_ = micros32(now_ns_);
    ring_.reap([&](const io_uring_cqe* cqe) {
      const uint64_t ud = cqe->user_data;
      const uint32_t index = index_of(ud);
      switch (tag_of(ud)) {
        case Tag::kAccept:
          on_accept(index, cqe->res, cqe->flags);
          break;
        case Tag::kMsgRing:
          stats_.op(Op::k_msg_ring).observe_ns(elapsed_ns_since(time_of(ud), now_ns_));
          if (cqe->res < 0) on_msg_ring_failed(static_cast<int>(index), cqe->res);
          break;
        case Tag::kQuietCloseAccepted:
          // -ECANCELED: the msg_ring before it failed and kept the slot open for a retry.
          if (cqe->res >= 0) stats_.op(Op::k_close).observe_ns(elapsed_ns_since(time_of(ud), now_ns_));
          break;
        case Tag::kDrainNotify:
          --in_flight_;
          break;
        case Tag::kControlAccept:
          on_control_accept(cqe->res, cqe->flags);
          break;
        case Tag::kControlRecv:
          on_control_recv(cqe->res);
          break;
        case Tag::kInstall:
          on_install(index, cqe->res);
          break;
        case Tag::kDiagDone:
          on_diagnostics_done();
          break;
        case Tag::kDiagRequest:
          // The message did not reach that worker (it has stopped): it will not answer, so count
          // it as answered with nothing rather than leave the ctl client waiting.
          on_diagnostics_done();
          break;
        case Tag::kSignal:
          if (cqe->res == sizeof(signalfd_siginfo) && siginfo_.ssi_signo == SIGHUP) {
            if (reload_ && !draining_) reload_();
            io_uring_sqe* s = ring_.sqe();
            io_uring_prep_read(s, signal_fd, &siginfo_, sizeof(siginfo_), 0);
            s->user_data = data(Tag::kSignal, 0);
          } else if (cqe->res == sizeof(signalfd_siginfo) &&
              (siginfo_.ssi_signo == SIGTERM || siginfo_.ssi_signo == SIGINT)) {
            fprintf(stderr, "ringlb: %s: no longer accepting; draining for up to %lldms\n",
                    strsignal(static_cast<int>(siginfo_.ssi_signo)),
                    static_cast<long long>(shared_.config.drain_timeout.count()));
            begin_drain();
          } else {
            io_uring_sqe* s = ring_.sqe();
            io_uring_prep_read(s, signal_fd, &siginfo_, sizeof(siginfo_), 0);
            s->user_data = data(Tag::kSignal, 0);
          }
          break;
        default:
          break;
      }
    });
    if (draining_ && !drain_sent_ && accepts_armed_ == 0) {
      // Every multishot accept has posted its last completion and every connection it took was
      // handed off (hand-offs are issued when submitted), so these messages queue behind them in
      // each worker: the workers see every connection before they start counting down to zero.
      for (const auto& w : shared_.workers) {
        io_uring_sqe* s = ring_.sqe();
        uring::prep_msg_ring_data(s, w->ring_fd, 0, encode(Tag::kControl, kControlDrain, now_us_));
        s->user_data = data(Tag::kDrainNotify, 0);
        ++in_flight_;
      }
      drain_sent_ = true;
    }
    if (drain_sent_ && in_flight_ == 0 && control_conn_ < 0) break;
  }
  return 0;
}

void Acceptor::on_accept(uint32_t listener, int res, uint32_t flags) {
  Listener& l = listeners_[listener];
  // For a multishot accept, the latency of each completion is measured from the previous one.
  if (shared_.config.metrics_enabled) {
    stats_.op(Op::k_accept).observe_ns(elapsed_ns_since(l.last_stamp_us, now_ns_));
  }
  l.last_stamp_us = now_us_;
  if (!(flags & IORING_CQE_F_MORE)) {
    if (draining_) {
      listeners_[listener].armed = false;
      --accepts_armed_;  // cancelled: this listener's accepts are over
    } else {
      arm_accept(listener);
    }
  }
  if (res < 0) {
    if (res != -ECANCELED) stats_.accept_errors.add();
    return;
  }
  stats_.accepted.add();
  // Accepted before the cancel took effect (during a drain, or a takeover): the client is
  // connected, so it is served like any other, within the drain deadline.
  const uint64_t limit = shared_.config.max_connections;
  if (shared_.active_connections() >= limit) {
    stats_.rejected_max_connections.add();
    return close_slot(res);
  }
  dispatch(res, Pending{now_us_, 0, 0, listener}, -1);
}

void Acceptor::dispatch(int slot, const Pending& pending, int not_worker) {
  const unsigned n = static_cast<unsigned>(shared_.workers.size());
  int chosen = -1;
  for (unsigned i = 0; i < n; ++i) {
    const unsigned w = (next_worker_ + i) % n;
    const WorkerSlot& ws = *shared_.workers[w];
    if (static_cast<int>(w) == not_worker && n > 1) continue;
    if (ws.stopped.load(std::memory_order_relaxed)) continue;
    if (ws.active.load(std::memory_order_relaxed) >= ws.capacity) continue;  // full: skip it
    chosen = static_cast<int>(w);
    break;
  }
  if (chosen < 0) {
    stats_.rejected_max_connections.add();
    return close_slot(slot);
  }
  next_worker_ = (static_cast<unsigned>(chosen) + 1) % n;
  Pending& p = pending_[static_cast<size_t>(slot)];
  p = pending;
  p.worker = static_cast<uint16_t>(chosen);
  // msg_ring, then (linked) close of our own slot: the worker holds its own reference once the
  // message is sent. On success neither posts a completion, so a hand-off costs the acceptor no
  // CQE; on failure the close is cancelled and the slot stays ours for a retry.
  const bool sample = shared_.config.metrics_enabled && ++sample_ % kSampleEvery == 0;
  io_uring_sqe* sqe = ring_.sqe();
  uring::prep_msg_ring_fd_alloc(sqe, shared_.workers[static_cast<size_t>(chosen)]->ring_fd, slot,
                                encode(Tag::kHandoff, p.listener, p.accept_us), 0);
  sqe->flags |= IOSQE_IO_LINK | (sample ? 0 : IOSQE_CQE_SKIP_SUCCESS);
  sqe->user_data = data(Tag::kMsgRing, static_cast<uint32_t>(slot));
  sqe = ring_.sqe();
  io_uring_prep_close_direct(sqe, static_cast<unsigned>(slot));
  sqe->flags |= sample ? 0 : IOSQE_CQE_SKIP_SUCCESS;
  sqe->user_data = data(Tag::kQuietCloseAccepted, static_cast<uint32_t>(slot));
}

void Acceptor::on_msg_ring_failed(int slot, int res) {
  const Pending p = pending_[static_cast<size_t>(slot)];
  stats_.handoff_failed(-res);
  // -EOVERFLOW: the worker got the descriptor but no completion for it; it cannot be asked to
  // serve it, so do not send it twice. Other errors left the worker without it: try another.
  const bool retry = res != -EOVERFLOW && p.tries + 1u < shared_.workers.size() && !draining_;
  if (retry) {
    stats_.handoff_retries.add();
    Pending again = p;
    ++again.tries;
    return dispatch(slot, again, p.worker);
  }
  close_slot(slot);
}

void Acceptor::close_slot(int slot) {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_close_direct(sqe, static_cast<unsigned>(slot));
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  sqe->user_data = data(Tag::kQuietCloseAccepted, static_cast<uint32_t>(slot));
}

Acceptor::~Acceptor() {
  if (control_conn_ >= 0) close(control_conn_);
  if (control_fd_ >= 0) {
    close(control_fd_);
    unlink(shared_.config.control_socket.c_str());
  }
}

void Acceptor::begin_drain() {
  if (draining_) return;
  draining_ = true;
  for (const Listener& l : listeners_) {
    // Stop the multishot accept, then close the listening socket: new clients are refused.
    io_uring_sqe* sqe = ring_.sqe();
    io_uring_prep_cancel_fd(sqe, l.slot, IORING_ASYNC_CANCEL_FD_FIXED | IORING_ASYNC_CANCEL_ALL);
    sqe->user_data = data(Tag::kDrainNotify, 0);
    ++in_flight_;
    sqe = ring_.sqe();
    io_uring_prep_close_direct(sqe, static_cast<unsigned>(l.slot));
    sqe->user_data = data(Tag::kDrainNotify, 0);
    ++in_flight_;
  }
}

void Acceptor::on_control_accept(int res, uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE) && control_fd_ >= 0 && !draining_) arm_control_accept();
  if (res < 0) return;
  if (control_conn_ >= 0 || draining_) {
    // One control client at a time; the slow path has no queue.
    static const char kBusy[] = "busy\n";
    send(res, kBusy, sizeof(kBusy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(res);
    return;
  }
  control_conn_ = res;
  control_line_.clear();
  control_state_ = ControlState::kReading;
  arm_control_recv();
}

void Acceptor::arm_control_recv() {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_recv(sqe, control_conn_, control_buf_, sizeof(control_buf_), 0);
  sqe->user_data = data(Tag::kControlRecv, 0);
}

void Acceptor::end_control_client() {
  if (control_conn_ >= 0) close(control_conn_);
  control_conn_ = -1;
  control_state_ = ControlState::kIdle;
}

void Acceptor::on_control_recv(int res) {
  if (control_conn_ < 0) return;
  if (res <= 0) {
    if (control_state_ == ControlState::kAwaitReady) {
      fprintf(stderr, "ringlb: takeover aborted: the new process went away; still serving\n");
    }
    return end_control_client();
  }
  control_line_.append(control_buf_, static_cast<size_t>(res));
  const size_t nl = control_line_.find('\n');
  if (nl == std::string::npos) {
    if (control_line_.size() > 1024) return end_control_client();
    return arm_control_recv();
  }
  const std::string command = control_line_.substr(0, nl);
  control_line_.erase(0, nl + 1);
  on_control_command(command);
}

void Acceptor::on_control_command(const std::string& command) {
  if (control_state_ == ControlState::kAwaitReady) {
    if (command != "ready") {
      fprintf(stderr, "ringlb: takeover aborted: unexpected '%s'; still serving\n", command.c_str());
      return end_control_client();
    }
    fprintf(stderr, "ringlb: listeners handed over; no longer accepting, draining for up to %lldms\n",
            static_cast<long long>(shared_.config.drain_timeout.count()));
    end_control_client();
    if (control_fd_ >= 0) {
      close(control_fd_);  // the new process serves the control path from now on
      control_fd_ = -1;
    }
    return begin_drain();
  }
  if (command == "listeners") {
    // Regular fds for the listening direct descriptors, only for as long as it takes to send them.
    control_state_ = ControlState::kInstalling;
    install_fds_.assign(listeners_.size(), -1);
    installs_pending_ = static_cast<uint32_t>(listeners_.size());
    for (uint32_t i = 0; i < listeners_.size(); ++i) {
      io_uring_sqe* sqe = ring_.sqe();
      uring::prep_fixed_fd_install(sqe, listeners_[i].slot, 0);
      sqe->user_data = data(Tag::kInstall, i);
    }
    if (installs_pending_ == 0) on_install(0, -EBADF);
    return;
  }
  if (command == "connections") {
    control_state_ = ControlState::kDiagnostics;
    diagnostics_pending_ = static_cast<uint32_t>(shared_.workers.size());
    for (const auto& w : shared_.workers) {
      io_uring_sqe* sqe = ring_.sqe();
      uring::prep_msg_ring_data(sqe, w->ring_fd, 0, encode(Tag::kControl, kControlDiagnostics, now_us_));
      sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
      sqe->user_data = data(Tag::kDiagRequest, 0);
    }
    return;
  }
  const std::string reply = "unknown command '" + command + "' (listeners, connections)\n";
  send(control_conn_, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  end_control_client();
}

void Acceptor::on_install(uint32_t listener, int res) {
  if (listener < install_fds_.size()) {
    install_fds_[listener] = res;
    if (res >= 0) stats_.installed(metrics::InstallReason::k_takeover);
  }
  if (installs_pending_ > 0 && --installs_pending_ > 0) return;
  bool ok = !install_fds_.empty();
  for (int fd : install_fds_) ok = ok && fd >= 0;
  int ret = ok ? send_listeners(control_conn_, bound_, install_fds_) : -EBADF;
  // The receiver holds its own references now: these fds were only the envelope.
  for (int fd : install_fds_) {
    if (fd >= 0) close(fd);
  }
  install_fds_.clear();
  if (ret < 0) {
    fprintf(stderr, "ringlb: takeover: cannot send the listeners: %s; still serving\n", strerror(-ret));
    return end_control_client();
  }
  fprintf(stderr, "ringlb: takeover: sent %zu listeners; waiting for the new process\n", listeners_.size());
  control_state_ = ControlState::kAwaitReady;
  arm_control_recv();
}

void Acceptor::on_diagnostics_done() {
  if (diagnostics_pending_ == 0 || --diagnostics_pending_ > 0) return;
  std::string text;
  for (const auto& w : shared_.workers) {
    std::lock_guard<std::mutex> lock(w->diagnostics_mu);
    text += w->diagnostics;
  }
  if (text.empty()) text = "no live connections\n";
  // A small answer on a local socket: a blocking send is fine on this slow path.
  if (control_conn_ >= 0) write_all_fd(control_conn_, text);
  end_control_client();
}

}  // namespace ringlb
