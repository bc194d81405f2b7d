#include "server/access_log.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "metrics/stats.h"
#include "tests/support/process.h"

namespace ringlb {
namespace {

using testing::TempDir;

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(AccessLine, EveryField) {
  sockaddr_in client{};
  client.sin_family = AF_INET;
  client.sin_port = htons(51234);
  inet_pton(AF_INET, "192.0.2.7", &client.sin_addr);
  sockaddr_in6 listener{};
  listener.sin6_family = AF_INET6;
  listener.sin6_port = htons(443);
  inet_pton(AF_INET6, "2001:db8::1", &listener.sin6_addr);
  const std::string backend = "10.0.0.5:80";
  AccessRecord r;
  r.start_unix_us = 1795325890123456;  // 2026-11-22T05:38:10.123456Z
  r.client = reinterpret_cast<const sockaddr*>(&client);
  r.listener = reinterpret_cast<const sockaddr*>(&listener);
  r.backend = &backend;
  r.worker = 1;
  r.queue_us = 1500;
  r.connect_attempts = 2;
  r.connect_us = 312;
  r.duration_us = 12534;
  r.bytes_from_client = 123;
  r.bytes_from_backend = 4567890123ULL;
  r.close_reason = "client_eof";
  std::string line;
  append_access_line(r, &line);
  EXPECT_EQ(line,
            "2026-11-22T05:38:10.123456Z client=192.0.2.7:51234 listener=[2001:db8::1]:443 "
            "backend=10.0.0.5:80 worker=1 queue_us=1500 connect_attempts=2 connect_us=312 duration_us=12534 "
            "bytes_from_client=123 bytes_from_backend=4567890123 close=client_eof\n");
}

TEST(AccessLine, UnknownValuesAreDashes) {
  AccessRecord r;
  r.start_unix_us = 0;
  r.close_reason = "no_backend";
  std::string line = "first\n";
  append_access_line(r, &line);  // appends
  EXPECT_EQ(line,
            "first\n1970-01-01T00:00:00.000000Z client=- listener=- backend=- worker=0 "
            "queue_us=0 connect_attempts=0 connect_us=- duration_us=0 bytes_from_client=0 "
            "bytes_from_backend=0 close=no_backend\n");
}

TEST(AccessLog, WritesWhatWasSubmittedAndCountsIt) {
  TempDir dir;
  const std::string path = dir.path() + "/access.log";
  balancer::BackendRegistry backends;
  metrics::Registry stats(1, &backends);
  std::string error;
  {
    auto log = AccessLog::open(path, &stats, &error);
    ASSERT_NE(log, nullptr) << error;
    std::string batch = "a\nb\n";
    EXPECT_TRUE(log->submit(&batch, 2));
    EXPECT_TRUE(batch.empty());
    batch = "c\n";
    EXPECT_TRUE(log->submit(&batch, 1));
  }  // the destructor writes everything handed over
  EXPECT_EQ(read_file(path), "a\nb\nc\n");
  EXPECT_EQ(stats.access_log_lines.get(), 3u);
  EXPECT_EQ(stats.access_log_dropped_lines.get(), 0u);
}

TEST(AccessLog, ReopenFollowsLogRotation) {
  TempDir dir;
  const std::string path = dir.path() + "/access.log";
  std::string error;
  auto log = AccessLog::open(path, nullptr, &error);
  ASSERT_NE(log, nullptr) << error;
  std::string batch = "before\n";
  log->submit(&batch, 1);
  // logrotate: move the file, then tell ringlb (SIGHUP). Lines wait until the rename is seen.
  for (int i = 0; i < 250 && read_file(path).empty(); ++i) usleep(20'000);
  ASSERT_EQ(std::rename(path.c_str(), (path + ".1").c_str()), 0);
  log->reopen();
  batch = "after\n";
  log->submit(&batch, 1);
  log.reset();
  EXPECT_EQ(read_file(path + ".1"), "before\n");
  EXPECT_EQ(read_file(path), "after\n");
}

TEST(AccessLog, DropsAndCountsWhenTheWriterIsTooFarBehind) {
  TempDir dir;
  const std::string path = dir.path() + "/fifo";
  // A FIFO nobody reads from blocks the writer in write() once the pipe is full: a stalled disk.
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  const int reader = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);  // so the writer's open succeeds
  ASSERT_GE(reader, 0);
  balancer::BackendRegistry backends;
  metrics::Registry stats(1, &backends);
  std::string error;
  auto log = AccessLog::open(path, &stats, &error, /*max_pending_bytes=*/4096);
  ASSERT_NE(log, nullptr) << error;
  const std::string line(1000, 'x');
  uint64_t taken = 0, dropped = 0;
  for (int i = 0; i < 200; ++i) {  // 200 KB against a 64 KB pipe and 4 KB of backlog
    std::string batch = line;
    (log->submit(&batch, 1) ? taken : dropped) += 1;
  }
  EXPECT_GT(dropped, 0u);
  EXPECT_EQ(stats.access_log_dropped_lines.get(), dropped);
  // Drain the pipe so the writer finishes, then every line taken arrives whole.
  std::string got;
  std::thread drain([&] {
    char buf[65536];
    for (;;) {
      const ssize_t n = read(reader, buf, sizeof(buf));
      if (n > 0) got.append(buf, static_cast<size_t>(n));
      if (n == 0) break;  // the writer closed its end
      if (n < 0) usleep(1000);
    }
  });
  log.reset();
  drain.join();
  close(reader);
  EXPECT_EQ(got.size(), taken * line.size());
  EXPECT_EQ(stats.access_log_lines.get(), taken);
}

}  // namespace
}  // namespace ringlb
