// Bandwidth limits over real sockets: 16 MiB under download-rate = "4MiB" take 3.5 to 5 s while
// 16 MiB uploaded at the same time on the same connection go through much faster, ringlb's memory
// stays flat (nothing is buffered: a held recv leaves the bytes to TCP), its CPU time stays low (a
// timer, no busy loop), and ringlb_rate_limited_seconds_total counts the time held. An upload-rate
// holds the upload only, a cluster's lower rate wins over its listener's, and `ringlb check`
// refuses a bad rate (or interval) naming its file, line and key.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/net.h"
#include "tests/support/process.h"

namespace ringlb::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr size_t kMiB = 1 << 20;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// CPU time (user and system) of process `pid` so far, in seconds; -1 when unreadable.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  // After "(comm)", which may hold spaces: state is field 3, utime and stime fields 14 and 15.
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(paren + 2));
  std::string skip;
  for (int i = 3; i < 14; ++i) fields >> skip;
  unsigned long long utime = 0, stime = 0;
  if (!(fields >> utime >> stime)) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Sends `download` bytes to each client and reads what it uploads until its FIN, at the same
// time; records when the whole upload had arrived.
class Source {
 public:
  explicit Source(size_t download)
      : backend_([this, download](int fd, const std::atomic<bool>& stopping) { serve(fd, stopping, download); }) {}
  std::string address() const { return backend_.address(); }
  size_t uploaded() const { return uploaded_.load(); }
  // Seconds from the connection's arrival to the upload's FIN; -1 before.
  double upload_seconds() const { return upload_seconds_.load(); }

 private:
  void serve(int fd, const std::atomic<bool>& stopping, size_t download) {
    const Clock::time_point start = Clock::now();
    std::thread reader([&] {
      char buf[65536];
      for (;;) {
        const ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) break;
        uploaded_ += static_cast<size_t>(n);
      }
      upload_seconds_ = seconds_since(start);
    });
    const std::string chunk(64 * 1024, 'd');
    for (size_t sent = 0; sent < download && !stopping;) {
      const size_t n = std::min(chunk.size(), download - sent);
      if (!write_all(fd, chunk.data(), n)) break;
      sent += n;
    }
    shutdown(fd, SHUT_WR);
    reader.join();
  }

  std::atomic<size_t> uploaded_{0};
  std::atomic<double> upload_seconds_{-1};
  Backend backend_;  // last: its threads stop before the counters go
};

// Connects, uploads `upload` bytes (then FIN) while it downloads to EOF; the download's seconds.
double transfer(uint16_t port, size_t upload, size_t* downloaded) {
  Fd c = connect_loopback(port);
  const Clock::time_point start = Clock::now();
  std::thread writer([&] {
    const std::string chunk(64 * 1024, 'u');
    for (size_t sent = 0; sent < upload;) {
      const size_t n = std::min(chunk.size(), upload - sent);
      if (!write_all(c.get(), chunk.data(), n)) return;
      sent += n;
    }
    shutdown(c.get(), SHUT_WR);
  });
  *downloaded = 0;
  char buf[65536];
  for (;;) {
    const ssize_t n = recv(c.get(), buf, sizeof(buf), 0);
    if (n <= 0) break;
    *downloaded += static_cast<size_t>(n);
  }
  const double took = seconds_since(start);
  writer.join();
  return took;
}

TEST(Bandwidth, SixteenMiBAtFourMiBPerSecondTakeFourSecondsWhileTheUploadRunsFreeAndMemoryStaysFlat) {
  Source source(16 * kMiB);
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", source.address(), "--workers", "1",
                        "--health-interval", "0s", "--download-rate", "4MiB"}))
      << lb.output();
  // Warm up what a first connection allocates (its cluster's picker, ...) with a short one that
  // reads its first 256 KiB and leaves, so that the RSS compared is the steady one.
  {
    Fd warm = connect_loopback(lb.port());
    std::string first(256 * 1024, '\0');
    ASSERT_TRUE(read_exact(warm.get(), first.data(), first.size()));
  }
  ASSERT_TRUE(eventually([&] { return lb.metric("ringlb_connections_active") == 0; }));
  // The warm-up was held too (its second buffer): counted apart.
  const double held_warm = lb.metric("ringlb_rate_limited_seconds_total", {"direction=\"download\""});
  const long rss_before = rss_kib(lb.pid());
  ASSERT_GT(rss_before, 0);
  const double cpu_before = cpu_seconds(lb.pid());
  ASSERT_GE(cpu_before, 0);
  long rss_during = 0;
  double held_during = 0;
  std::thread watcher([&] {
    std::this_thread::sleep_for(2s);
    rss_during = rss_kib(lb.pid());
    held_during = lb.metric("ringlb_rate_limited_seconds_total", {"direction=\"download\""}) - held_warm;
  });
  size_t downloaded = 0;
  const double took = transfer(lb.port(), 16 * kMiB, &downloaded);
  watcher.join();
  EXPECT_EQ(downloaded, 16 * kMiB);
  // 16 MiB at 4 MiB/s, the first buffer (128 KiB) at once: 3.97 s.
  EXPECT_GE(took, 3.5) << "the download was not held to 4 MiB/s";
  EXPECT_LE(took, 5.0) << "the download was held below 4 MiB/s";
  ASSERT_TRUE(eventually([&] { return source.upload_seconds() >= 0; }, 5s));
  EXPECT_EQ(source.uploaded(), 16 * kMiB);
  EXPECT_LT(source.upload_seconds(), 1.5) << "the upload was slowed with the download";
  const long rss_after = rss_kib(lb.pid());
  // A held recv waits on a timer, not a busy loop: ringlb is idle most of the 4 s (spinning, it
  // would spend them all). Moving the 32 MiB itself takes a few tens of milliseconds.
  const double cpu = cpu_seconds(lb.pid()) - cpu_before;
  EXPECT_LT(cpu, 0.5) << "CPU seconds spent over a " << took << " s transfer";
  // Nothing is buffered beyond the pump's buffers, registered at start: the 16 MiB wait in TCP.
  EXPECT_LT(rss_during - rss_before, 2048) << "RSS KiB before " << rss_before << ", during " << rss_during;
  EXPECT_LT(rss_after - rss_before, 2048) << "RSS KiB before " << rss_before << ", after " << rss_after;
  // Held most of the transfer (all but the recvs and sends of 128 buffers), and counted while it
  // ran, not only at the end.
  const double held =
      lb.metric("ringlb_rate_limited_seconds_total", {"listener=\"listener-1\"", "direction=\"download\""}) - held_warm;
  EXPECT_GT(held_during, 0.5);
  EXPECT_GT(held, held_during);
  EXPECT_GT(held, took - 0.5);
  EXPECT_LT(held, took);
  EXPECT_EQ(lb.metric("ringlb_rate_limited_seconds_total", {"direction=\"upload\""}), 0);
  printf("download %.2f s, upload %.2f s, held %.2f s, ringlb CPU %.2f s; RSS KiB before %ld, during %ld, after %ld\n",
         took, source.upload_seconds(), held, cpu, rss_before, rss_during, rss_after);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

// The other direction: 8 MiB uploaded under upload-rate = "4MiB" take about 2 s while 8 MiB
// downloaded on the same connection arrive at once; the time held is the upload's.
TEST(Bandwidth, AnUploadRateHoldsTheUploadOnly) {
  Source source(8 * kMiB);
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--listen", "127.0.0.1:0", "--backend", source.address(), "--workers", "1",
                        "--health-interval", "0s", "--upload-rate", "4MiB"}))
      << lb.output();
  size_t downloaded = 0;
  const double download_took = transfer(lb.port(), 8 * kMiB, &downloaded);
  EXPECT_EQ(downloaded, 8 * kMiB);
  EXPECT_LT(download_took, 1.5) << "the download was slowed with the upload";
  ASSERT_TRUE(eventually([&] { return source.upload_seconds() >= 0; }, 10s));
  EXPECT_EQ(source.uploaded(), 8 * kMiB);
  // 8 MiB at 4 MiB/s, the first buffer (128 KiB) at once: 1.97 s.
  EXPECT_GE(source.upload_seconds(), 1.7) << "the upload was not held to 4 MiB/s";
  EXPECT_LE(source.upload_seconds(), 2.6) << "the upload was held below 4 MiB/s";
  const double held = lb.metric("ringlb_rate_limited_seconds_total", {"direction=\"upload\""});
  EXPECT_GT(held, 1.4);
  EXPECT_LT(held, source.upload_seconds());
  EXPECT_EQ(lb.metric("ringlb_rate_limited_seconds_total", {"direction=\"download\""}), 0);
  printf("upload %.2f s, download %.2f s, held %.2f s\n", source.upload_seconds(), download_took, held);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

std::string write_toml(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// The cluster protects its backends: its 1 MiB/s wins over the listener's 4 MiB/s.
TEST(Bandwidth, AClustersLowerRateWins) {
  Source source(2 * kMiB);
  const std::string path = write_toml("cluster_rate.toml",
                                      "workers = 1\nhealth-interval = \"0s\"\n"
                                      "[cluster.slow]\nbackends = [\"" + source.address() + "\"]\ndownload-rate = \"1MiB\"\n"
                                      "[[listener]]\nname = \"front\"\naddress = \"127.0.0.1:0\"\ncluster = \"slow\"\n"
                                      "download-rate = \"4MiB\"\n");
  RinglbProcess lb;
  ASSERT_TRUE(lb.start({"--config", path})) << lb.output();
  size_t downloaded = 0;
  const double took = transfer(lb.port(), 0, &downloaded);
  EXPECT_EQ(downloaded, 2 * kMiB);
  // 2 MiB at 1 MiB/s, the first 128 KiB at once: 1.88 s (at 4 MiB/s it would be 0.47 s).
  EXPECT_GE(took, 1.7);
  EXPECT_LE(took, 3.0);
  EXPECT_GT(lb.metric("ringlb_rate_limited_seconds_total", {"listener=\"front\"", "direction=\"download\""}), 1.0);
  EXPECT_EQ(lb.stop(SIGTERM), 0);
}

TEST(Bandwidth, CheckRefusesABadRateNamingFileLineAndKey) {
  const std::string ringlb = runfile("server/ringlb");
  const std::string head = "[cluster.web]\nbackends = [\"127.0.0.1:1\"]\n";  // lines 1-2
  struct Case {
    std::string where, value, says;
  };
  const std::vector<Case> cases = {
      {"listener", "0", "listener[0].download-rate: invalid value 0: must be above zero"},
      {"listener", "-1", "listener[0].download-rate: invalid value -1: expected a rate above zero"},
      {"listener", "\"5XB\"", "listener[0].download-rate: invalid value \"5XB\": expected a rate above zero in bytes per "
                              "second: a whole number, or a string with a unit such as \"500KB\" or \"1MiB\" (KB, KiB, "
                              "MB, MiB, GB, GiB)"},
      {"cluster", "\"0MiB\"", "cluster.web.download-rate: invalid value \"0MiB\": must be above zero"},
  };
  for (const Case& c : cases) {
    const std::string key = "download-rate = " + c.value + "\n";
    // The key on line 3 either way.
    const std::string text = c.where == "cluster"
                                 ? head + key + "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n"
                                 : "[[listener]]\naddress = \"127.0.0.1:0\"\n" + key + "cluster = \"web\"\n" + head;
    const std::string path = write_toml("bad_rate.toml", text);
    const RunResult r = run_command({ringlb, "check", "--config", path}, 10s);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(path + ":3: " + c.says), std::string::npos) << r.output;
  }
  // The interim records' interval, the other key of the operator's: at least 1s, or 0s for off.
  const std::string path = write_toml("bad_interval.toml", "access-log-interval = \"500ms\"\n" + head +
                                                              "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n");
  const RunResult r = run_command({ringlb, "check", "--config", path}, 10s);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(path + ":1: access-log-interval: invalid value \"500ms\": must be at least 1s (or 0s: off)"),
            std::string::npos)
      << r.output;
  // A good file passes.
  const std::string good = write_toml("good_rates.toml", "access-log-interval = \"60s\"\nupload-rate = \"500KB\"\n" + head +
                                                            "download-rate = \"1MiB\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n"
                                                            "cluster = \"web\"\ndownload-rate = 4194304\n");
  const RunResult ok = run_command({ringlb, "check", "--config", good}, 10s);
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
}

}  // namespace
}  // namespace ringlb::testing
