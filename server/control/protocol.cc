#include "server/control/protocol.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <sstream>

namespace ringlb {
namespace {

bool make_unix_address(const std::string& path, sockaddr_un* addr) {
  if (path.size() >= sizeof(addr->sun_path)) return false;
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path, path.c_str(), path.size() + 1);
  return true;
}

// What a refusal line says ("error: WHY" or "busy"), or empty for any other line.
std::string refusal(const std::string& line) {
  if (line.rfind("error: ", 0) == 0) return line.substr(7);
  if (line == "busy") return "busy (every place is taken by other control clients, or it is stopping)";
  return {};
}

// A line from the other side as a log shows it: printable, and not all of a long one.
std::string shown(const std::string& line) {
  std::string out;
  for (char ch : line.substr(0, 80)) out += (ch >= 0x20 && ch < 0x7f) ? ch : '?';
  return line.size() > 80 ? out + "..." : out;
}

// Counts the lines of `text` (its complete ones: a line ends with '\n').
size_t count_lines(const std::string& text) {
  size_t n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

}  // namespace

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

bool write_all_fd(int fd, const std::string& s, int flags) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL | flags);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

int send_listeners(int conn_fd, const std::vector<Address>& addresses, const std::vector<int>& fds,
                   int flags) {
  if (addresses.size() != fds.size()) return -EINVAL;
  // An empty list still sends the count line, so the receiver sees the answer.
  size_t first = 0;
  do {
    const size_t count = std::min(kListenersPerMessage, fds.size() - first);
    std::string text;
    if (first == 0) text = "ringlb-listeners " + std::to_string(fds.size()) + "\n";
    for (size_t i = first; i < first + count; ++i) text += addresses[i].to_string() + "\n";
    iovec iov{text.data(), text.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kListenersPerMessage)] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (count > 0) {
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * count);
      cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int) * count);
      memcpy(CMSG_DATA(cmsg), fds.data() + first, sizeof(int) * count);
    }
    // The descriptors travel with the first byte only: the whole batch must go in this call.
    const ssize_t sent = sendmsg(conn_fd, &msg, MSG_NOSIGNAL | flags);
    if (sent < 0) return -errno;
    if (static_cast<size_t>(sent) < text.size() &&
        !write_all_fd(conn_fd, text.substr(static_cast<size_t>(sent)), flags)) {
      return -errno;
    }
    first += count;
  } while (first < fds.size());
  return 0;
}

Status request_listeners(const std::string& path, std::vector<InheritedListener>* out, int* conn_fd) {
  const int fd = connect_unix(path);
  if (fd < 0) return Status::error("cannot reach the running ringlb at " + path + ": " + strerror(-fd));
  if (!write_all_fd(fd, "listeners\n")) {
    Status s = Status::error("cannot ask " + path + " for its listeners: " + strerror(errno));
    close(fd);
    return s;
  }
  std::vector<int> fds;
  std::string text;
  auto fail = [&](const std::string& why) {
    for (int f : fds) close(f);
    close(fd);
    return Status::error("the running ringlb at " + path + " answered wrongly: " + why);
  };
  // Reads batches until the count line's number of descriptors and address lines are in. A
  // Unix stream socket never merges two messages' descriptors into one recvmsg.
  size_t count = 0;
  bool have_count = false;
  for (;;) {
    char buf[16384];
    iovec iov{buf, sizeof(buf)};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 253)] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); n >= 0 && c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        const size_t got = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < got; ++i) {
          int received;
          memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          fds.push_back(received);
        }
      }
    }
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(n == 0 ? "it closed the connection" : strerror(errno));
    if (msg.msg_flags & MSG_CTRUNC) return fail("descriptors were cut off");
    text.append(buf, static_cast<size_t>(n));
    if (!have_count) {
      const size_t nl = text.find('\n');
      if (nl == std::string::npos) {
        if (text.size() > 1024) return fail("unexpected reply");
        continue;
      }
      const std::string line = text.substr(0, nl);
      if (std::string why = refusal(line); !why.empty()) {
        close(fd);
        return Status::error("the running ringlb at " + path + " refused the takeover: " + shown(why));
      }
      std::istringstream first_line(line);
      std::string word;
      if (!(first_line >> word >> count) || word != "ringlb-listeners") {
        return fail("unexpected reply '" + shown(line) + "'");
      }
      have_count = true;
    }
    if (fds.size() > count) return fail("expected " + std::to_string(count) + " descriptors");
    if (fds.size() == count && count_lines(text) >= count + 1) break;
  }
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);  // the count line
  out->clear();
  for (size_t i = 0; i < count; ++i) {
    std::string addr_text;
    in >> addr_text;
    InheritedListener l;
    std::string why;
    if (!parse_address(addr_text, &l.address, &why)) {
      out->clear();
      return fail("bad address '" + addr_text + "'");
    }
    l.fd = fds[i];
    out->push_back(l);
  }
  *conn_fd = fd;
  return {};
}

int wait_handed_over(int conn_fd, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return -ETIMEDOUT;
    pollfd p{conn_fd, POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return -errno;
    if (ready == 0) return -ETIMEDOUT;
    char buf[64];
    const ssize_t n = recv(conn_fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0) return 0;  // closed: the old process accepts no more
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return errno == ECONNRESET ? 0 : -errno;  // gone altogether: nothing accepts there either
    }
    // Bytes (a later version's words): not the close; keep waiting for it.
  }
}

Status request_overrides(const std::string& path, std::string* text) {
  const int fd = connect_unix(path);
  if (fd < 0) return Status::error("cannot reach the running ringlb at " + path + ": " + strerror(-fd));
  if (!write_all_fd(fd, "overrides\n")) {
    Status s = Status::error("cannot ask " + path + " for its runtime state: " + strerror(errno));
    close(fd);
    return s;
  }
  std::string answer;
  for (;;) {
    char buf[16384];
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = Status::error("reading the runtime state from " + path + ": " + strerror(errno));
      close(fd);
      return s;
    }
    if (n == 0) break;
    answer.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  // An older version answers "unknown command ..." rather than "error: ...".
  const std::string first = answer.substr(0, answer.find('\n'));
  if (std::string why = refusal(first); !why.empty() || first.rfind("unknown command", 0) == 0) {
    return Status::error("the running ringlb at " + path + " answered: " + shown(first));
  }
  *text = std::move(answer);
  return {};
}

int listen_unix(const std::string& path) {
  sockaddr_un addr;
  if (!make_unix_address(path, &addr)) return -ENAMETOOLONG;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  unlink(path.c_str());  // a stale socket file, or the previous process's (it keeps its own)
  // Owner only (0600): the socket hands out listening sockets and connection details. Set
  // between bind and listen, while nobody can connect yet.
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || chmod(path.c_str(), 0600) != 0 ||
      listen(fd, 16) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  return fd;
}

}  // namespace ringlb
