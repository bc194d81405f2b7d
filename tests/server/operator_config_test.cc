// The operator's keys: access-log-interval (interim access-log records) and the bandwidth limits
// download-rate and upload-rate (per listener, with top-level defaults, and per cluster), as the
// file and the flags give them, and every bad value refused with "FILE:LINE: KEY: message".
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "server/config/command_line.h"
#include "server/config/config.h"

namespace ringlb {
namespace {

struct Parsed {
  Status status;
  Config config;
  std::string message;
  std::string path;
};

Parsed parse_args(std::vector<std::string> args) {
  args.insert(args.begin(), "ringlb");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  Parsed p;
  p.status = parse_config(static_cast<int>(argv.size()), argv.data(), &p.config);
  p.message = p.status.message();
  return p;
}

Parsed parse_toml(const std::string& text, std::vector<std::string> flags = {}) {
  const char* dir = getenv("TEST_TMPDIR");
  const std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/operator.toml";
  std::ofstream(path) << text;
  flags.insert(flags.begin(), {"--config", path});
  Parsed p = parse_args(flags);
  p.path = path;
  return p;
}

const char kCluster[] = "[cluster.web]\nbackends = [\"127.0.0.1:8080\"]\n";  // 2 lines
const char kListener[] = "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"web\"\n";  // 3 lines

TEST(Rates, UnitsAreDecimalOrBinaryAndAPlainNumberIsBytes) {
  const std::vector<std::pair<std::string, uint64_t>> good = {
      {"1", 1},
      {"4096", 4096},
      {"500KB", 500'000},
      {"500KiB", 512'000},
      {"1MB", 1'000'000},
      {"1MiB", 1 << 20},
      {"4MiB", 4 << 20},
      {"2GB", 2'000'000'000},
      {"1GiB", 1ULL << 30},
      {"1024GiB", 1ULL << 40},
      {"1099511627776", 1ULL << 40},
  };
  for (const auto& [text, bytes] : good) {
    uint64_t n = 0;
    const Status s = parse_rate(text, &n);
    EXPECT_TRUE(s.ok()) << text << ": " << s.message();
    EXPECT_EQ(n, bytes) << text;
  }
  for (const std::string text : {"", "0", "0MiB", "-1", "-1MiB", "1.5MiB", "5XB", "5kb", "5 MiB", "MiB", "1MiB/s",
                                 "1025GiB", "1099511627777", "99999999999999999999999"}) {
    uint64_t n = 7;
    EXPECT_FALSE(parse_rate(text, &n).ok()) << text;
    EXPECT_EQ(n, 7u) << text;
  }
}

TEST(Rates, PerListenerWithATopLevelDefaultAndPerCluster) {
  const Parsed p = parse_toml("download-rate = \"1MiB\"\n"
                              "[cluster.web]\nbackends = [\"127.0.0.1:8080\"]\ndownload-rate = \"500KB\"\nupload-rate = 65536\n"
                              "[cluster.other]\nbackends = [\"127.0.0.1:8081\"]\n" +
                              std::string(kListener) + "upload-rate = \"2MB\"\n"
                              "[[listener]]\naddress = \"127.0.0.1:0\"\ncluster = \"other\"\ndownload-rate = \"4MiB\"\n");
  ASSERT_TRUE(p.status.ok()) << p.message;
  ASSERT_EQ(p.config.listen.size(), 2u);
  EXPECT_EQ(p.config.listen[0].download_rate, 1u << 20) << "the top-level default";
  EXPECT_EQ(p.config.listen[0].upload_rate, 2'000'000u);
  EXPECT_EQ(p.config.listen[1].download_rate, 4u << 20) << "its own";
  EXPECT_EQ(p.config.listen[1].upload_rate, 0u) << "none";
  ASSERT_EQ(p.config.clusters.size(), 2u);
  EXPECT_EQ(p.config.clusters[0].download_rate, 500'000u);
  EXPECT_EQ(p.config.clusters[0].upload_rate, 65536u);
  EXPECT_EQ(p.config.clusters[1].download_rate, 0u) << "the top-level key is the listeners' default, not the clusters'";
}

TEST(Rates, AsFlags) {
  const Parsed p = parse_args({"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--download-rate", "4MiB",
                               "--upload-rate", "1000"});
  ASSERT_TRUE(p.status.ok()) << p.message;
  EXPECT_EQ(p.config.listen[0].download_rate, 4u << 20);
  EXPECT_EQ(p.config.listen[0].upload_rate, 1000u);
  const Parsed bad = parse_args({"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--download-rate", "0"});
  EXPECT_EQ(bad.message, "invalid value '0' for --download-rate: must be above zero (leave the key out for no limit)");
}

// A rate of 0, a negative one, a unit that does not exist, a fraction, a type that is no rate:
// each refused at its line, naming the key.
TEST(Rates, BadValuesAreRefusedAtTheirLine) {
  struct Case {
    std::string value;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"0", "must be above zero (leave the key out for no limit)"},
      {"\"0KiB\"", "must be above zero (leave the key out for no limit)"},
      {"-5", "expected a rate above zero in bytes per second"},
      {"\"-5MiB\"", "expected a rate above zero in bytes per second"},
      {"\"5XB\"", "expected a rate above zero in bytes per second: a whole number, or a string with a unit such as "
                  "\"500KB\" or \"1MiB\" (KB, KiB, MB, MiB, GB, GiB), at most 1024GiB"},
      {"\"1.5MiB\"", "expected a rate above zero"},
      {"1.5", "expected a rate above zero"},
      {"true", "expected a rate above zero"},
      {"\"2048GiB\"", "at most 1024GiB"},
  };
  for (const Case& c : cases) {
    // At the top level (line 1), in a cluster (line 4) and in a listener (line 9).
    const Parsed top = parse_toml("upload-rate = " + c.value + "\n" + kCluster + kListener);
    EXPECT_EQ(top.message.rfind(top.path + ":1: upload-rate: invalid value " + c.value + ": ", 0), 0u)
        << c.value << ": " << top.message;
    EXPECT_NE(top.message.find(c.says), std::string::npos) << c.value << ": " << top.message;
    const Parsed cluster = parse_toml(std::string("\n") + kCluster + "download-rate = " + c.value + "\n" + kListener);
    EXPECT_EQ(cluster.message.rfind(cluster.path + ":4: cluster.web.download-rate: invalid value " + c.value + ": ", 0), 0u)
        << c.value << ": " << cluster.message;
    const Parsed listener = parse_toml(std::string("\n") + kCluster + "\n\n" + kListener + "download-rate = " + c.value + "\n");
    EXPECT_EQ(listener.message.rfind(listener.path + ":9: listener[0].download-rate: invalid value " + c.value + ": ", 0), 0u)
        << c.value << ": " << listener.message;
    EXPECT_NE(listener.message.find(c.says), std::string::npos) << c.value << ": " << listener.message;
  }
}

TEST(Rates, AUdpListenerRefusesThem) {
  const Parsed p = parse_toml(std::string(kCluster) + kListener + "protocol = \"udp\"\ndownload-rate = \"1MiB\"\n");
  ASSERT_FALSE(p.status.ok());
  EXPECT_NE(p.message.find(":7: listener[0].download-rate: bandwidth limits hold a TCP stream's recvs: not for a UDP listener"),
            std::string::npos)
      << p.message;
  // The top-level default is for TCP listeners: a UDP listener does not take it.
  const Parsed top = parse_toml("upload-rate = \"1MiB\"\n" + std::string(kCluster) + kListener + "protocol = \"udp\"\n");
  ASSERT_TRUE(top.status.ok()) << top.message;
  EXPECT_EQ(top.config.listen[0].upload_rate, 0u);
}

TEST(AccessLogInterval, OffByDefaultAtLeastASecondOrZero) {
  EXPECT_EQ(parse_toml(std::string(kCluster) + kListener).config.access_log_interval, Millis(0));
  const Parsed p = parse_toml("access-log-interval = \"60s\"\n" + std::string(kCluster) + kListener);
  ASSERT_TRUE(p.status.ok()) << p.message;
  EXPECT_EQ(p.config.access_log_interval, Millis(60'000));
  const Parsed off = parse_toml("access-log-interval = \"0s\"\n" + std::string(kCluster) + kListener);
  ASSERT_TRUE(off.status.ok()) << off.message;
  EXPECT_EQ(off.config.access_log_interval, Millis(0));
  const Parsed flag = parse_args({"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--access-log-interval", "1s"});
  ASSERT_TRUE(flag.status.ok()) << flag.message;
  EXPECT_EQ(flag.config.access_log_interval, Millis(1000));

  const Parsed short_one = parse_toml("access-log-interval = \"500ms\"\n" + std::string(kCluster) + kListener);
  EXPECT_EQ(short_one.message, short_one.path + ":1: access-log-interval: invalid value \"500ms\": must be at least 1s (or 0s: off)");
  const Parsed bad = parse_toml("access-log-interval = \"soon\"\n" + std::string(kCluster) + kListener);
  EXPECT_EQ(bad.message.rfind(bad.path + ":1: access-log-interval: invalid value \"soon\": ", 0), 0u) << bad.message;
  // Process-wide: not a listener's key.
  const Parsed in_listener = parse_toml(std::string(kCluster) + kListener + "access-log-interval = \"60s\"\n");
  EXPECT_NE(in_listener.message.find(":6: listener[0].access-log-interval: unknown key"), std::string::npos)
      << in_listener.message;
}

}  // namespace
}  // namespace ringlb
