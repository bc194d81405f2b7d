#include "tests/support/backends.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace ringlb::testing {

Backend::Backend(Handler serve, int backlog) : serve_(std::move(serve)) {
  listener_ = listen_loopback(&port_, backlog);
  acceptor_ = std::thread([this] { accept_loop(); });
}

Backend::Backend(Handler serve, uint16_t port) : serve_(std::move(serve)) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr = loopback(port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::listen(fd.get(), 1024) == 0) {
    listener_ = std::move(fd);
    port_ = port;
  }
  acceptor_ = std::thread([this] { accept_loop(); });
}

Backend::Backend(Handler serve, const std::string& ip, uint16_t port) : serve_(std::move(serve)), ip_(ip) {
  const bool v6 = ip.find(':') != std::string::npos;
  if (v6) ip_ = "[" + ip + "]";
  Fd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage addr{};
  socklen_t len = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (v6) {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&addr);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    inet_pton(AF_INET6, ip.c_str(), &a6->sin6_addr);
  } else {
    *reinterpret_cast<sockaddr_in*>(&addr) = loopback(port);
    inet_pton(AF_INET, ip.c_str(), &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr);
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) == 0 && ::listen(fd.get(), 1024) == 0 &&
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    listener_ = std::move(fd);
    port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                     : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  }
  acceptor_ = std::thread([this] { accept_loop(); });
}

Backend::~Backend() { stop(); }

void Backend::stop() {
  if (stopping_.exchange(true)) return;
  shutdown(listener_.get(), SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  listener_.reset();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : workers_) t.join();
}

void Backend::accept_loop() {
  while (!stopping_.load()) {
    pollfd p{listener_.get(), POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    int fd = accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    accepted_.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu_);
    open_fds_.push_back(fd);
    workers_.emplace_back([this, fd] {
      serve_(fd, stopping_);
      std::lock_guard<std::mutex> l(mu_);
      for (auto& f : open_fds_) {
        if (f == fd) f = -1;
      }
      close(fd);
    });
  }
}

Backend::Handler echo_handler() {
  return [](int fd, const std::atomic<bool>&) {
    char buf[65536];
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (!write_all(fd, buf, static_cast<size_t>(n))) return;
    }
    shutdown(fd, SHUT_WR);
  };
}

Backend::Handler name_then_echo_handler(char name) {
  auto echo = echo_handler();
  return [name, echo](int fd, const std::atomic<bool>& stopping) {
    if (!write_all(fd, &name, 1)) return;
    echo(fd, stopping);
  };
}

Backend::Handler reply_after_eof_handler(size_t reply_bytes) {
  return [reply_bytes](int fd, const std::atomic<bool>&) {
    char buf[65536];
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
    }
    std::string reply(reply_bytes, '\0');
    for (size_t i = 0; i < reply_bytes; ++i) reply[i] = pattern_byte(i);
    write_all(fd, reply.data(), reply.size());
  };
}

Backend::Handler name_handler(std::string name) {
  return [name](int fd, const std::atomic<bool>&) {
    write_all(fd, name.data(), name.size());
    shutdown(fd, SHUT_WR);
    char buf[256];
    while (recv(fd, buf, sizeof(buf), 0) > 0) {
    }
  };
}

Backend::Handler firehose_handler(std::atomic<uint64_t>* written) {
  return [written](int fd, const std::atomic<bool>& stopping) {
    std::string chunk(65536, 'x');
    while (!stopping.load()) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      ssize_t n = send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return;
      written->fetch_add(static_cast<uint64_t>(n));
    }
  };
}

uint16_t refused_port() {
  uint16_t port = 0;
  Fd fd = listen_loopback(&port);
  return port;  // closed on return: nothing listens there any more
}

}  // namespace ringlb::testing
