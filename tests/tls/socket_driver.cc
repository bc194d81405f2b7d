#include "tests/tls/socket_driver.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "tests/support/process.h"

namespace ringlb::tls::pki {

namespace {

void copy_view(const Stream& s, DriveResult* r) {
  r->handshake = s.handshake_done();
  r->failure = s.failure();
  r->error_text = s.error();
  r->alpn = std::string(s.alpn());
  r->version = s.handshake_done() ? s.version() : "";
  r->server_name = s.server_name();
  r->peer_cn = s.peer_cn();
  r->resumed = s.resumed();
  if (s.certificate() != nullptr) r->certificate_file = s.certificate()->files().cert;
  if (s.handshake_done()) r->tlvs = s.proxy_tlvs(true);
}

}  // namespace

DriveResult drive(int fd, Stream& s, const DriveOptions& o) {
  DriveResult r;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(o.timeout_ms);
  bool sent = false, peer_fin = false, shutdown_wanted = false;
  std::string echo_backlog;
  s.handshake();  // a client's hello
  for (;;) {
    while (s.pending_output() > 0) {
      const auto out = s.output();
      const ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
      if (n <= 0) break;
      s.consume_output(static_cast<size_t>(n));
    }
    if (s.handshake_done() && !sent) {
      sent = true;
      if (!o.send.empty()) echo_backlog += o.send;
    }
    while (!echo_backlog.empty()) {
      const ssize_t n = s.write(echo_backlog.data(), echo_backlog.size());
      if (n <= 0) break;
      echo_backlog.erase(0, static_cast<size_t>(n));
    }
    if (sent && o.shutdown_after_send) shutdown_wanted = true;
    if (shutdown_wanted && echo_backlog.empty()) s.shutdown_write();
    if ((r.eof || r.error || peer_fin) && echo_backlog.empty() && s.pending_output() == 0) break;
    if (o.expect_bytes > 0 && r.received.size() >= o.expect_bytes && s.pending_output() == 0) break;
    if (std::chrono::steady_clock::now() > deadline) {
      r.timed_out = true;
      break;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (s.pending_output() > 0 ? POLLOUT : 0)), 0};
    if (poll(&p, 1, 20) <= 0) continue;
    if ((p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    uint8_t buf[16384];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EAGAIN) continue;
      r.error = true;
      continue;
    }
    if (n == 0) {
      s.feed_eof();
      peer_fin = true;
    } else {
      s.feed(buf, static_cast<size_t>(n));
    }
    char plain[16384];
    for (;;) {
      const ssize_t m = s.read(plain, sizeof(plain));
      if (m > 0) {
        r.received.append(plain, static_cast<size_t>(m));
        if (o.echo) echo_backlog.append(plain, static_cast<size_t>(m));
        continue;
      }
      if (m == Stream::kEof && !r.eof) {
        r.eof = true;
        r.truncated = s.truncated();
        if (o.shutdown_on_eof) shutdown_wanted = true;
      }
      if (m == Stream::kError) r.error = true;
      break;
    }
    s.release_input();
  }
  copy_view(s, &r);
  return r;
}

TlsServer::TlsServer(std::shared_ptr<const ServerContextSet> set, DriveOptions options, bool rotate_workers)
    : set_(std::move(set)), options_(std::move(options)), rotate_(rotate_workers) {
  listener_ = testing::listen_loopback(&port_);
  thread_ = std::thread([this] { run(); });
}

TlsServer::~TlsServer() {
  stop_ = true;
  thread_.join();
}

void TlsServer::run() {
  size_t worker = 0;
  while (!stop_) {
    pollfd p{listener_.get(), POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    testing::Fd conn(accept(listener_.get(), nullptr, nullptr));
    if (!conn) continue;
    Stream s(set_->worker(worker));
    if (rotate_) worker = (worker + 1) % set_->workers();
    DriveResult r = drive(conn.get(), s, options_);
    std::lock_guard<std::mutex> lock(mu_);
    results_.push_back(std::move(r));
  }
}

std::vector<DriveResult> TlsServer::results() const {
  std::lock_guard<std::mutex> lock(mu_);
  return results_;
}

bool TlsServer::wait_for(size_t n) const {
  return testing::eventually([&] { return results().size() >= n; }, std::chrono::seconds(10));
}

}  // namespace ringlb::tls::pki
