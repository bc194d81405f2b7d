// ringlb's stderr lines: the level in each, journald's <N> prefix when stderr is the journal,
// --log-level filtering, and --log-level as a flag and a file key.
#include "server/base/log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "server/config/command_line.h"
#include "server/config/config.h"

namespace ringlb {
namespace {

// Sends fd 2 to a file for the test's length; text() is what was written.
class CapturedStderr {
 public:
  CapturedStderr() : path_(std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/stderr.txt") {
    fflush(stderr);
    saved_ = dup(STDERR_FILENO);
    const int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    dup2(fd, STDERR_FILENO);
    close(fd);
  }
  ~CapturedStderr() {
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    unsetenv("JOURNAL_STREAM");
    reset_log_destination();
    set_log_level(LogLevel::kInfo);
  }
  // JOURNAL_STREAM as systemd sets it: DEVICE:INODE of the stream on stderr.
  void pretend_journal() {
    struct stat st {};
    fstat(STDERR_FILENO, &st);
    setenv("JOURNAL_STREAM", (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)).c_str(), 1);
    reset_log_destination();
  }
  std::string text() const {
    std::ifstream in(path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  std::string path_;
  int saved_ = -1;
};

TEST(Log, PlainFormNamesProgramAndLevel) {
  CapturedStderr err;
  reset_log_destination();
  log(LogLevel::kError, "cannot bind %s", "127.0.0.1:80");
  log(LogLevel::kWarning, "slow");
  log(LogLevel::kInfo, "listening on %d", 1);
  EXPECT_EQ(err.text(), "ringlb: error: cannot bind 127.0.0.1:80\nringlb: warning: slow\nringlb: info: listening on 1\n");
}

TEST(Log, JournalGetsSdDaemonPrefixes) {
  CapturedStderr err;
  err.pretend_journal();
  set_log_level(LogLevel::kDebug);
  log(LogLevel::kError, "e");
  log(LogLevel::kWarning, "w");
  log(LogLevel::kInfo, "i");
  log(LogLevel::kDebug, "d");
  EXPECT_EQ(err.text(), "<3>e\n<4>w\n<6>i\n<7>d\n");
}

TEST(Log, JournalStreamOfAnotherFileIsIgnored) {
  // Inherited by a process whose stderr went elsewhere: not the journal.
  CapturedStderr err;
  setenv("JOURNAL_STREAM", "1:1", 1);
  reset_log_destination();
  log(LogLevel::kInfo, "i");
  EXPECT_EQ(err.text(), "ringlb: info: i\n");
}

TEST(Log, LevelFilters) {
  CapturedStderr err;
  reset_log_destination();
  set_log_level(LogLevel::kWarning);
  log(LogLevel::kInfo, "dropped");
  log(LogLevel::kDebug, "dropped");
  log(LogLevel::kWarning, "kept");
  log(LogLevel::kError, "kept too");
  EXPECT_EQ(err.text(), "ringlb: warning: kept\nringlb: error: kept too\n");
}

TEST(Log, LongLinesAreCutNotOverrun) {
  CapturedStderr err;
  reset_log_destination();
  log(LogLevel::kInfo, "%s", std::string(5000, 'x').c_str());
  const std::string text = err.text();
  EXPECT_LT(text.size(), 2048u);
  EXPECT_EQ(text.back(), '\n');
}

// Whether the command line parses, its error (if any) in *message.
bool parse(std::vector<const char*> args, Config* c, std::string* message) {
  args.insert(args.begin(), "ringlb");
  args.insert(args.end(), {"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1"});
  const Status s = parse_config(static_cast<int>(args.size()), args.data(), c);
  *message = s.message();
  return s.ok();
}

TEST(LogLevelOption, FlagSetsTheLevel) {
  Config c;
  std::string message;
  ASSERT_TRUE(parse({}, &c, &message)) << message;
  EXPECT_EQ(c.log_level, LogLevel::kInfo);
  ASSERT_TRUE(parse({"--log-level", "debug"}, &c, &message)) << message;
  EXPECT_EQ(c.log_level, LogLevel::kDebug);
  ASSERT_TRUE(parse({"--log-level", "error"}, &c, &message)) << message;
  EXPECT_EQ(c.log_level, LogLevel::kError);
  EXPECT_FALSE(parse({"--log-level", "loud"}, &c, &message));
  EXPECT_NE(message.find("expected error, warning, info or debug"), std::string::npos) << message;
}

TEST(LogLevelOption, FileKey) {
  const std::string path = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/level.toml";
  std::ofstream(path) << "log-level = \"warning\"\n";
  Config c;
  std::string message;
  ASSERT_TRUE(parse({"--config", path.c_str()}, &c, &message)) << message;
  EXPECT_EQ(c.log_level, LogLevel::kWarning);
}

}  // namespace
}  // namespace ringlb
