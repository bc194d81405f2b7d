// The data path's receive modes under bulk load, over real sockets: `--recv single` (one recv per
// message) and `--recv multishot` (one multishot recv per direction), with one or several buffers
// per direction (--flow-buffers). Every byte is checked in place against the stream it belongs
// to, so a byte lost, duplicated or reordered anywhere fails the test.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;

// Stream `seed` holds, at byte p, byte p % 8 of splitmix64(seed, p / 8): every position differs.
uint64_t word_at(uint64_t seed, uint64_t w) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ULL + w + 1;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void fill(uint64_t seed, uint64_t pos, char* out, size_t len) {
  for (size_t i = 0; i < len;) {
    const uint64_t p = pos + i;
    const uint64_t w = word_at(seed, p / 8);
    const size_t in_word = p % 8;
    const size_t n = std::min<size_t>(8 - in_word, len - i);
    memcpy(out + i, reinterpret_cast<const char*>(&w) + in_word, n);
    i += n;
  }
}

// Writes bytes [from, to) of stream `seed`; false when the peer went away.
bool send_stream(int fd, uint64_t seed, uint64_t from, uint64_t to) {
  std::vector<char> buf(256 << 10);
  for (uint64_t pos = from; pos < to;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), to - pos));
    fill(seed, pos, buf.data(), n);
    if (!write_all(fd, buf.data(), n)) return false;
    pos += n;
  }
  return true;
}

// Reads to EOF (or error), checking each byte against stream `seed`. Returns the bytes that
// matched before the first mismatch; *mismatch says whether one was found.
uint64_t receive_stream(int fd, uint64_t seed, bool* mismatch, int timeout_ms = 60000) {
  set_recv_timeout(fd, timeout_ms);
  std::vector<char> buf(256 << 10), want(256 << 10);
  uint64_t pos = 0;
  *mismatch = false;
  for (;;) {
    const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) return pos;
    fill(seed, pos, want.data(), static_cast<size_t>(n));
    if (memcmp(buf.data(), want.data(), static_cast<size_t>(n)) != 0) {
      *mismatch = true;
      return pos;
    }
    pos += static_cast<uint64_t>(n);
  }
}

struct Mode {
  const char* name;
  std::vector<std::string> args;
};

class DataPath : public ::testing::TestWithParam<Mode> {
 protected:
  std::vector<std::string> args(std::vector<std::string> more) const {
    more.insert(more.end(), GetParam().args.begin(), GetParam().args.end());
    return more;
  }
};

// The client uploads, half-closes while the backend is in the middle of its download, and the
// backend finishes the download only after it has seen that FIN: the FIN must overtake nothing.
TEST_P(DataPath, GibibyteEachWayWithAHalfCloseInTheMiddle) {
  constexpr uint64_t kBytes = 1ULL << 30;
  constexpr uint64_t kUpSeed = 11, kDownSeed = 22;
  std::atomic<uint64_t> backend_got{0};
  std::atomic<bool> backend_mismatch{false}, backend_saw_eof{false};
  Backend peer([&](int fd, const std::atomic<bool>&) {
    std::thread reader([&] {
      bool bad = false;
      backend_got = receive_stream(fd, kUpSeed, &bad);
      backend_mismatch = bad;
      backend_saw_eof = true;
    });
    send_stream(fd, kDownSeed, 0, kBytes / 2);
    while (!backend_saw_eof) std::this_thread::sleep_for(1ms);
    send_stream(fd, kDownSeed, kBytes / 2, kBytes);
    reader.join();
    shutdown(fd, SHUT_WR);
  });
  RinglbProcess lb;
  ASSERT_TRUE(lb.start(args({"--listen", "127.0.0.1:0", "--backend", peer.address(), "--workers", "1",
                             "--health-interval", "0s"})))
      << lb.output();
  Fd fd = connect_loopback(lb.port());
  ASSERT_TRUE(fd);
  std::thread writer([&] {
    if (send_stream(fd.get(), kUpSeed, 0, kBytes)) shutdown(fd.get(), SHUT_WR);
  });
  bool mismatch = false;
  const uint64_t got = receive_stream(fd.get(), kDownSeed, &mismatch);
  writer.join();
  EXPECT_FALSE(mismatch) << "download differs at byte " << got;
  EXPECT_EQ(got, kBytes);
  EXPECT_FALSE(backend_mismatch.load()) << "upload differs at byte " << backend_got.load();
  EXPECT_EQ(backend_got.load(), kBytes);
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_connections_active") == 0; }));
  EXPECT_EQ(lb.metric("ringlb_proxy_buffers_in_use"), 0);
  EXPECT_EQ(lb.metric("ringlb_open_direct_slots"), 0);
  EXPECT_EQ(lb.closed_total("client_eof"), 1);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

// Backends that reset in the middle of a bulk stream both ways: each closes only its own
// connection, and every slot and buffer comes back.
TEST_P(DataPath, BackendResetMidStreamLeavesNothingBehind) {
  Backend rude([](int fd, const std::atomic<bool>&) {
    std::thread drain([fd] {
      char buf[65536];
      while (recv(fd, buf, sizeof(buf), 0) > 0) {
      }
    });
    send_stream(fd, 5, 0, 8 << 20);
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    shutdown(fd, SHUT_RD);  // ends the drain thread; the close that follows resets
    drain.join();
  });
  RinglbProcess lb;
  ASSERT_TRUE(lb.start(args({"--listen", "127.0.0.1:0", "--backend", rude.address(), "--workers", "1",
                             "--health-interval", "0s"})))
      << lb.output();
  std::vector<std::thread> clients;
  std::atomic<int> cut{0};
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      Fd fd = connect_loopback(lb.port());
      if (!fd) return;
      std::thread up([&] { send_stream(fd.get(), 100 + c, 0, 64 << 20); });
      bool mismatch = false;
      const uint64_t got = receive_stream(fd.get(), 5, &mismatch, 20000);
      shutdown(fd.get(), SHUT_RDWR);
      up.join();
      if (!mismatch && got <= (8 << 20)) cut.fetch_add(1);
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(cut.load(), 8) << "every client gets an intact prefix, then its connection closes";
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_connections_active") == 0; }));
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_open_direct_slots") == 0; }));
  EXPECT_EQ(lb.metric("ringlb_proxy_buffers_in_use"), 0);
  EXPECT_EQ(lb.closed_total("reset") + lb.closed_total("error") + lb.closed_total("backend_eof") +
                lb.closed_total("client_eof"),
            8);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Modes, DataPath,
    ::testing::Values(Mode{"single", {"--recv", "single", "--flow-buffers", "1"}},
                      Mode{"single_pipelined", {"--recv", "single", "--flow-buffers", "2"}},
                      Mode{"multishot", {"--recv", "multishot", "--flow-buffers", "2"}}),
    [](const ::testing::TestParamInfo<Mode>& info) { return std::string(info.param.name); });

// A multishot recv keeps receiving until its direction holds --flow-buffers buffers; then it is
// cancelled (its last completion comes without IORING_CQE_F_MORE) and armed again once the slow
// reader has caught up. Memory stays bounded meanwhile, and every byte arrives in order.
TEST(DataPathMultishot, SlowReaderStopsTheRecvWhichIsArmedAgainAfterwards) {
  constexpr uint64_t kBytes = 256ULL << 20;
  Backend source([](int fd, const std::atomic<bool>&) {
    send_stream(fd, 7, 0, kBytes);
    shutdown(fd, SHUT_WR);
  });
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", source.address(), "--workers", "1",
                        "--health-interval", "0s", "--recv", "multishot", "--flow-buffers", "4"}))
      << lb.output();
  Fd fd = connect_loopback(lb.port());
  ASSERT_TRUE(fd);
  char first;
  ASSERT_TRUE(read_exact(fd.get(), &first, 1));
  // Stalled: ringlb must stop reading from the backend, holding a bounded number of buffers.
  double last = -1;
  int still = 0;
  for (int i = 0; i < 100 && still < 5; ++i) {
    std::this_thread::sleep_for(100ms);
    const double now = lb.metric("ringlb_backend_received_bytes_total");
    still = now == last ? still + 1 : 0;
    last = now;
  }
  ASSERT_EQ(still, 5) << "ringlb never stopped reading from the backend";
  // It stopped (its byte budget spent, or cancelled) and was armed again, more than once.
  EXPECT_GE(lb.metric("ringlb_recv_backpressure_stops_total") + lb.metric("ringlb_recv_multishot_ended_total"), 2);
  // --flow-buffers 4: a recv's byte budget is what the free buffers hold, and one that fills
  // buffers only partly is cancelled at 4; what arrives before the cancel lands stays within
  // the budget.
  const double held = lb.metric("ringlb_proxy_buffers_in_use");
  EXPECT_LE(held, 2 * 4) << "buffers held for one stalled direction";
  RecordProperty("buffers_held", std::to_string(held));
  EXPECT_LT(last, kBytes / 2) << "ringlb read far ahead of its slow reader";
  // The reader resumes: the recv is armed again, and the rest arrives intact.
  bool mismatch = false;
  set_recv_timeout(fd.get(), 30000);
  std::vector<char> buf(1 << 20), want(1 << 20);
  uint64_t pos = 1;
  for (;;) {
    const ssize_t n = recv(fd.get(), buf.data(), buf.size(), 0);
    if (n <= 0) break;
    fill(7, pos, want.data(), static_cast<size_t>(n));
    if (memcmp(buf.data(), want.data(), static_cast<size_t>(n)) != 0) {
      mismatch = true;
      break;
    }
    pos += static_cast<uint64_t>(n);
  }
  char want_first;
  fill(7, 0, &want_first, 1);
  EXPECT_EQ(first, want_first);
  EXPECT_FALSE(mismatch) << "stream differs after byte " << pos;
  EXPECT_EQ(pos, kBytes);
  fd.reset();  // the client's side ends too
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_connections_active") == 0; }));
  EXPECT_EQ(lb.metric("ringlb_proxy_buffers_in_use"), 0);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

// With 8 buffers for 16 busy streams the provided ring runs dry: a multishot recv ends with
// -ENOBUFS, its flow waits its turn for a buffer, and its recv is armed again; nothing is lost.
// The backend takes each upload whole before it answers: an echo backend, which reads only
// while it can write, could hold every buffer of so small a pool in sends it never takes and
// stall the replies that would free them (docs/operations.md, known limits).
TEST(DataPathMultishot, RecvIsArmedAgainAfterTheBuffersRanOut) {
  constexpr uint64_t kUp = 16 << 20, kDown = 4 << 20;
  Backend sink_then_reply([](int fd, const std::atomic<bool>&) {
    std::vector<char> buf(1 << 16);
    uint64_t got = 0;
    ssize_t n;
    while ((n = recv(fd, buf.data(), buf.size(), 0)) > 0) got += static_cast<uint64_t>(n);
    if (got == kUp) send_stream(fd, 77, 0, kDown);
    shutdown(fd, SHUT_WR);
  });
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", sink_then_reply.address(), "--workers", "1",
                        "--health-interval", "0s", "--recv", "multishot", "--flow-buffers", "2",
                        "--buffers", "8"}))
      << lb.output();
  constexpr int kClients = 16;
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      Fd fd = connect_loopback(lb.port());
      if (!fd) return;
      std::thread up([&] {
        if (send_stream(fd.get(), 300 + c, 0, kUp)) shutdown(fd.get(), SHUT_WR);
      });
      bool mismatch = false;
      const uint64_t got = receive_stream(fd.get(), 77, &mismatch);
      up.join();
      if (!mismatch && got == kDown) ok.fetch_add(1);
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), kClients);
  EXPECT_GT(lb.metric("ringlb_buffer_waits_total"), 0) << "the buffers never ran out";
  EXPECT_TRUE(eventually([&] { return lb.metric("ringlb_connections_active") == 0; }));
  EXPECT_EQ(lb.metric("ringlb_proxy_buffers_in_use"), 0);
  EXPECT_EQ(lb.metric("ringlb_open_direct_slots"), 0);
  EXPECT_EQ(lb.closed_total("client_eof") + lb.closed_total("backend_eof"), kClients);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

}  // namespace
}  // namespace ringlb::testing
