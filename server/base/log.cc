#include "server/base/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

namespace ringlb {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_journal{-1};  // -1: not decided yet

const char* name(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "error";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kDebug:
      return "debug";
  }
  return "info";
}

// systemd sets JOURNAL_STREAM to "DEVICE:INODE" of the stream it connected stderr to. Compared
// with stderr itself, as sd_journal_stream_fd(3) advises: a child whose stderr was redirected
// elsewhere inherits the variable too.
bool stderr_is_journal() {
  const char* env = getenv("JOURNAL_STREAM");
  if (env == nullptr || *env == '\0') return false;
  unsigned long long dev = 0, ino = 0;
  struct stat st {};
  if (sscanf(env, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

}  // namespace

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }

void reset_log_destination() { g_journal.store(-1); }

void log(LogLevel level, const char* fmt, ...) {
  if (static_cast<int>(level) > g_level.load(std::memory_order_relaxed)) return;
  int journal = g_journal.load(std::memory_order_relaxed);
  if (journal < 0) {
    journal = stderr_is_journal() ? 1 : 0;
    g_journal.store(journal);
  }
  char line[2048];
  int n = journal ? snprintf(line, sizeof(line), "<%d>", static_cast<int>(level))
                  : snprintf(line, sizeof(line), "ringlb: %s: ", name(level));
  va_list args;
  va_start(args, fmt);
  const int body = vsnprintf(line + n, sizeof(line) - static_cast<size_t>(n) - 1, fmt, args);
  va_end(args);
  // Truncated to what fits (vsnprintf returns what it would have written).
  n += body < 0 ? 0 : std::min(body, static_cast<int>(sizeof(line)) - n - 2);
  line[n++] = '\n';
  // One write: whole lines, whichever thread writes them. A failed write has nowhere to go.
  [[maybe_unused]] const ssize_t ret = write(STDERR_FILENO, line, static_cast<size_t>(n));
}

}  // namespace ringlb
