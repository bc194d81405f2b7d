#include "server/control.h"

#include <netinet/in.h>
#include <linux/tcp.h>  // the kernel's tcp_info: glibc's lacks the byte counters
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace ringlb {
namespace {

constexpr size_t kMaxListeners = 64;

bool make_unix_address(const std::string& path, sockaddr_un* addr) {
  if (path.size() >= sizeof(addr->sun_path)) return false;
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path, path.c_str(), path.size() + 1);
  return true;
}

int connect_unix(const std::string& path) {
  sockaddr_un addr;
  if (!make_unix_address(path, &addr)) return -ENAMETOOLONG;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  return fd;
}

}  // namespace

bool write_all_fd(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

int send_listeners(int conn_fd, const std::vector<Address>& addresses, const std::vector<int>& fds) {
  std::string text = "ringlb-listeners " + std::to_string(fds.size()) + "\n";
  for (const Address& a : addresses) text += a.to_string() + "\n";
  iovec iov{text.data(), text.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxListeners)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  return sendmsg(conn_fd, &msg, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

int request_listeners(const std::string& path, std::vector<InheritedListener>* out, int* conn_fd,
                      std::string* error) {
  const int fd = connect_unix(path);
  if (fd < 0) {
    *error = "cannot reach the running ringlb at " + path + ": " + strerror(-fd);
    return fd;
  }
  if (!write_all_fd(fd, "listeners\n")) {
    *error = "cannot ask " + path + " for its listeners: " + strerror(errno);
    close(fd);
    return -EIO;
  }
  char buf[4096];
  iovec iov{buf, sizeof(buf) - 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxListeners)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  const ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  std::vector<int> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int received;
        memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        fds.push_back(received);
      }
    }
  }
  auto fail = [&](const std::string& why) {
    for (int f : fds) close(f);
    close(fd);
    *error = "the running ringlb at " + path + " answered wrongly: " + why;
    return -EPROTO;
  };
  if (n <= 0) return fail(n == 0 ? "it closed the connection" : strerror(errno));
  buf[n] = '\0';
  std::istringstream in(std::string(buf, static_cast<size_t>(n)));
  std::string word;
  size_t count = 0;
  if (!(in >> word >> count) || word != "ringlb-listeners") return fail("unexpected reply");
  if (count != fds.size()) return fail("expected " + std::to_string(count) + " descriptors");
  out->clear();
  for (size_t i = 0; i < count; ++i) {
    std::string text;
    in >> text;
    InheritedListener l;
    std::string why;
    if (!parse_address(text, &l.address, &why)) return fail("bad address '" + text + "'");
    l.fd = fds[i];
    out->push_back(l);
  }
  *conn_fd = fd;
  return 0;
}

int listen_unix(const std::string& path) {
  sockaddr_un addr;
  if (!make_unix_address(path, &addr)) return -ENAMETOOLONG;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  unlink(path.c_str());  // a stale socket file, or the previous process's (it keeps its own)
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 16) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  return fd;
}

int run_ctl(const std::string& path, const std::string& command) {
  const int fd = connect_unix(path);
  if (fd < 0) {
    fprintf(stderr, "ringlb ctl: cannot connect to %s: %s\n", path.c_str(), strerror(-fd));
    return 2;
  }
  if (!write_all_fd(fd, command + "\n")) {
    fprintf(stderr, "ringlb ctl: cannot send to %s: %s\n", path.c_str(), strerror(errno));
    close(fd);
    return 1;
  }
  char buf[16384];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    fwrite(buf, 1, static_cast<size_t>(n), stdout);
  }
  close(fd);
  return 0;
}

std::string describe_socket(int fd) {
  sockaddr_storage local{}, peer{};
  socklen_t llen = sizeof(local), plen = sizeof(peer);
  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen);
  getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen);
  tcp_info info{};
  socklen_t ilen = sizeof(info);
  std::ostringstream out;
  out << "local=" << address_from_sockaddr(reinterpret_cast<sockaddr*>(&local), llen).to_string()
      << " peer=" << address_from_sockaddr(reinterpret_cast<sockaddr*>(&peer), plen).to_string();
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &ilen) == 0) {
    out << " rtt_us=" << info.tcpi_rtt << " rttvar_us=" << info.tcpi_rttvar
        << " retransmits=" << info.tcpi_total_retrans << " bytes_acked=" << info.tcpi_bytes_acked
        << " bytes_received=" << info.tcpi_bytes_received;
  }
  return out.str();
}

}  // namespace ringlb
