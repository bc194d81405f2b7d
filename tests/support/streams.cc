#include "tests/support/streams.h"

#include <sys/socket.h>

#include <chrono>
#include <random>
#include <string>

#include "tests/support/net.h"

namespace ringlb::testing {

LongStream::LongStream(uint16_t port, int chunks) {
  Fd fd = connect_loopback(port);
  if (!fd) return;
  set_recv_timeout(fd.get(), 10000);
  if (!read_exact(fd.get(), &served_by, 1)) return;
  connected = true;
  thread = std::thread([this, chunks, f = fd.release()] {
    Fd fd(f);
    std::mt19937 rng(static_cast<unsigned>(f));
    for (int i = 0; i < chunks; ++i) {
      std::string chunk(8192, '\0');
      for (char& c : chunk) c = static_cast<char>(rng());
      std::string back(chunk.size(), '\0');
      if (!write_all(fd.get(), chunk.data(), chunk.size()) ||
          !read_exact(fd.get(), back.data(), back.size()) || back != chunk) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(40));
    }
    shutdown(fd.get(), SHUT_WR);
    ok = read_to_eof(fd.get(), 5000).empty();
  });
}

LongStream::~LongStream() {
  if (thread.joinable()) thread.join();
}

}  // namespace ringlb::testing
