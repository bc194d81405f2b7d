// Small blocking-socket helpers for tests: loopback clients and servers with real sockets.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace ringlb::testing {

// RAII regular fd.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.release();
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

sockaddr_in loopback(uint16_t port);
// A listening TCP socket on 127.0.0.1 with an ephemeral port; *port receives it.
Fd listen_loopback(uint16_t* port, int backlog = 1024);
// A TCP port free on 127.0.0.1 below the ephemeral range (20000-31999), for a server another
// process binds later: a port from bind(0) could meanwhile become some client socket's local port
// (the suite's tests run side by side), and that server's bind would fail. 0 if none was found.
uint16_t quiet_port();
// A connected TCP client to 127.0.0.1:port, or an empty Fd.
Fd connect_loopback(uint16_t port);
// As connect_loopback, from the given local address (any of 127.0.0.0/8).
Fd connect_loopback_from(const char* source_ip, uint16_t port);
uint16_t local_port(int fd);
uint16_t peer_port(int fd);
// Writes all of `len` bytes; false on error.
bool write_all(int fd, const void* data, size_t len);
// Reads exactly `len` bytes; false on EOF or error first.
bool read_exact(int fd, void* data, size_t len);
// Reads until EOF (or error) into a string, with a receive timeout in ms (0 = none).
std::string read_to_eof(int fd, int timeout_ms = 0);
// What a connection to `port` from `source` reads until EOF (a name_handler backend's name
// through a proxy), or "" when it cannot connect.
std::string name_from(uint16_t port, const char* source = "127.0.0.1", int timeout_ms = 5000);
void set_recv_timeout(int fd, int timeout_ms);
// True when `fd` has something to read (or EOF) within `timeout_ms`.
bool readable_within(int fd, int timeout_ms);
// Number of entries in /proc/self/fd (or /proc/PID/fd).
int count_open_fds(int pid = 0);
// "fd->target " for each entry of /proc/PID/fd: what an fd-count assertion prints when it fails.
std::string list_open_fds(int pid);

}  // namespace ringlb::testing
