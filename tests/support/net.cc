#include "tests/support/net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <utility>
#include <vector>

namespace ringlb::testing {

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

Fd listen_loopback(uint16_t* port, int backlog) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return {};
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr = loopback(0);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return {};
  if (::listen(fd.get(), backlog) != 0) return {};
  *port = local_port(fd.get());
  return fd;
}

uint16_t quiet_port() {
  static std::atomic<unsigned> seed{static_cast<unsigned>(getpid()) * 2654435761u};
  for (int attempt = 0; attempt < 50; ++attempt) {
    const uint16_t port = static_cast<uint16_t>(20000 + (seed.fetch_add(7919) % 12000));
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr = loopback(port);
    if (fd && ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) return port;
  }
  return 0;
}

Fd connect_loopback(uint16_t port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return {};
  sockaddr_in addr = loopback(port);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return {};
  int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

Fd connect_loopback_from(const char* source_ip, uint16_t port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return {};
  sockaddr_in src{};
  src.sin_family = AF_INET;
  if (inet_pton(AF_INET, source_ip, &src.sin_addr) != 1) return {};
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) return {};
  sockaddr_in addr = loopback(port);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return {};
  return fd;
}

uint16_t local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

uint16_t peer_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

bool write_all(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool read_exact(int fd, void* data, size_t len) {
  char* p = static_cast<char*>(data);
  while (len > 0) {
    ssize_t n = ::recv(fd, p, len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

void set_recv_timeout(int fd, int timeout_ms) {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

bool readable_within(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) > 0;
}

std::string read_to_eof(int fd, int timeout_ms) {
  if (timeout_ms > 0) set_recv_timeout(fd, timeout_ms);
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string name_from(uint16_t port, const char* source, int timeout_ms) {
  Fd fd = connect_loopback_from(source, port);
  if (!fd) return "";
  return read_to_eof(fd.get(), timeout_ms);
}

namespace {

using FdList = std::vector<std::pair<std::string, std::string>>;

// The entries of /proc/PID/fd (/proc/self/fd for 0), each with where it points. False if the
// directory cannot be read.
bool open_fds(int pid, FdList* out) {
  const std::string path = pid == 0 ? "/proc/self/fd" : "/proc/" + std::to_string(pid) + "/fd";
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return false;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    char target[256];
    const ssize_t n = readlink((path + "/" + e->d_name).c_str(), target, sizeof(target) - 1);
    out->emplace_back(e->d_name, n > 0 ? std::string(target, static_cast<size_t>(n)) : "?");
  }
  closedir(dir);
  return true;
}

}  // namespace

int count_open_fds(int pid) {
  FdList fds;
  if (!open_fds(pid, &fds)) return -1;
  const int n = static_cast<int>(fds.size());
  return pid == 0 ? n - 1 : n;  // our own listing holds one fd open
}

std::string list_open_fds(int pid) {
  FdList fds;
  if (!open_fds(pid, &fds)) return "(cannot read /proc/" + std::to_string(pid) + "/fd)";
  std::string out;
  for (const auto& [fd, target] : fds) out += fd + "->" + target + " ";
  return out;
}

}  // namespace ringlb::testing
