// In-process TCP backends for end-to-end tests: real sockets, one thread per connection.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/net.h"

namespace ringlb::testing {

// Accepts on 127.0.0.1 (ephemeral port) and runs `serve(fd)` for each connection in its own
// thread; the fd is closed when serve returns. Stop() (or the destructor) ends everything.
class Backend {
 public:
  using Handler = std::function<void(int fd, const std::atomic<bool>& stopping)>;
  explicit Backend(Handler serve, int backlog = 1024);
  // On a given port of 127.0.0.1 (to bring a stopped backend back where it was).
  Backend(Handler serve, uint16_t port);
  // On `ip` (any of 127.0.0.0/8, or "::1") and `port` (0: an ephemeral one), e.g. several
  // backends behind one DNS name on one port.
  Backend(Handler serve, const std::string& ip, uint16_t port);
  ~Backend();
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  uint16_t port() const { return port_; }
  std::string address() const { return ip_ + ":" + std::to_string(port_); }
  int accepted() const { return accepted_.load(); }
  void stop();

 private:
  void accept_loop();

  Handler serve_;
  Fd listener_;
  uint16_t port_ = 0;
  std::string ip_ = "127.0.0.1";
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
  std::vector<int> open_fds_;
};

// Echoes every byte; on EOF from the client, sends FIN after the last byte.
Backend::Handler echo_handler();
// Reads until EOF, then replies with `reply_bytes` bytes of a known pattern and closes.
Backend::Handler reply_after_eof_handler(size_t reply_bytes);
// Writes its one-letter name first, then echoes every byte (knows who served a stream).
Backend::Handler name_then_echo_handler(char name);
// Writes the given text and closes (an "answer with my name" backend).
Backend::Handler name_handler(std::string name);
// Writes as fast as the peer accepts until stopped; counts what it wrote.
Backend::Handler firehose_handler(std::atomic<uint64_t>* written);

// A port on 127.0.0.1 where nothing listens: connecting is refused.
uint16_t refused_port();

// The byte at position i of the pattern reply_after_eof_handler sends.
inline char pattern_byte(size_t i) { return static_cast<char>('a' + (i * 7 + i / 251) % 26); }

}  // namespace ringlb::testing
