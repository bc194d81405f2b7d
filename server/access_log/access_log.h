// The access log (--access-log PATH): one line per client connection, written when it closes,
// like HAProxy's tcplog and nginx stream's access_log; with --access-log-interval, also one for
// every connection still open at each interval (event=update).
//
// Workers never touch the file. Each formats its lines into a batch of its own and hands the
// batch over a few times a second (or when it grows); one writer thread does the blocking
// write()s. A disk that stalls therefore stalls only that thread: once it is kMaxPendingBytes
// behind, further batches are dropped and counted instead of growing memory or slowing the
// data path.
#pragma once

#include <sys/socket.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "server/base/error.h"
#include "metrics/stats.h"
#include "server/access_log/access_log_format.h"

namespace ringlb {

// What one line says about a connection.
struct AccessRecord {
  int64_t start_unix_us = 0;            // wall clock when the connection reached its worker
  const sockaddr* client = nullptr;     // null: its address could not be read
  const sockaddr* listener = nullptr;   // the address it connected to
  const std::string* listener_name = nullptr;  // its [[listener]] name; null: unknown
  const std::string* cluster = nullptr; // where it was sent; null: not routed (an SNI listener's)
  const std::string* sni = nullptr;     // the ClientHello's server name; null: none seen
  const std::string* backend = nullptr; // the last backend picked; null: none
  unsigned worker = 0;
  int64_t queue_us = 0;                 // time waiting for a backend below its max-connections
  unsigned connect_attempts = 0;        // backends tried (retries after refusals and timeouts)
  int64_t connect_us = -1;              // the successful attempt's time; -1: never connected
  int64_t duration_us = 0;
  uint64_t bytes_from_client = 0;
  uint64_t bytes_from_backend = 0;
  // A client whose TLS ringlb ended (null otherwise; the fields are then left out of the line):
  // its version and cipher, the ALPN protocol ("" for none), its certificate's CN (null: none).
  const char* tls_version = nullptr;
  const char* tls_cipher = nullptr;
  std::string_view alpn;
  const std::string* client_cn = nullptr;
  const char* close_reason = "";        // null: none (an interim record)
  // An interim record (access-log-interval, event=update) of a connection still open: its bytes
  // and duration so far. Otherwise the record at close (event=close).
  bool update = false;
};

// Appends one line (logfmt: key=value, after an RFC 3339 UTC time of the connection's start):
//   2026-11-22T05:38:10.123456Z client=127.0.0.2:51234 listener=127.0.0.1:8080 listener_name=web
//   cluster=app sni=www.example.com backend=127.0.0.1:9000 worker=0 queue_us=0 connect_attempts=1 connect_us=312 duration_us=12534
//   bytes_from_client=123 bytes_from_backend=456 close=client_eof event=close
// (one line in the file). Unknown values are written as "-"; an interim record has close=-
// event=update. A name that is empty, is "-" or
// holds a space, '"', '=', '\\' or a byte outside printable ASCII is written as a JSON string.
void append_access_line(const AccessRecord& record, std::string* out);

// Appends the same record as one JSON object on one line (--access-log-format json), with the
// same field names, "time" for the start time, in the same order:
//   {"time":"2026-11-22T05:38:10.123456Z","client":"127.0.0.2:51234","listener":"127.0.0.1:8080",
//    "listener_name":"web","cluster":"app","sni":"www.example.com","backend":"127.0.0.1:9000","worker":0,"queue_us":0,"connect_attempts":1,"connect_us":312,
//    "duration_us":12534,"bytes_from_client":123,"bytes_from_backend":456,"close":"client_eof","event":"close"}
// Numbers are JSON numbers; unknown values are null (an interim record's "close" too, with
// "event":"update"). In strings '"' and '\\' are escaped with a
// backslash and every control character (U+0000 to U+001F, U+007F) as \u00XX; bytes that are
// not valid UTF-8 (a backend is named as the user wrote it) become U+FFFD, so every line is
// valid JSON whatever the configuration says.
void append_access_json(const AccessRecord& record, std::string* out);

// One line in `format`.
void append_access(AccessLogFormat format, const AccessRecord& record, std::string* out);

class AccessLog {
 public:
  static constexpr size_t kDefaultMaxPendingBytes = 8 << 20;

  // Opens `path` for appending ("-": standard output) and starts the writer thread; an error
  // names the path. `stats` (may be null) counts lines written and dropped.
  static StatusOr<std::unique_ptr<AccessLog>> open(const std::string& path, metrics::Registry* stats,
                                                   size_t max_pending_bytes = kDefaultMaxPendingBytes);
  // Writes everything handed over so far, then stops the writer.
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Takes the `lines` lines in *batch (leaving it empty, its capacity kept). False when the
  // writer is too far behind: the batch is dropped and counted.
  bool submit(std::string* batch, uint64_t lines);
  // Reopens the path (after logrotate moved the file); the writer switches between two writes.
  void reopen();

 private:
  AccessLog(std::string path, int fd, metrics::Registry* stats, size_t max_pending_bytes);
  void run();
  StatusOr<int> open_fd() const;

  const std::string path_;
  int fd_;
  metrics::Registry* const stats_;
  const size_t max_pending_bytes_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::string pending_;  // under mu_
  uint64_t pending_lines_ = 0;
  bool reopen_ = false;
  bool stopping_ = false;
  std::thread writer_;
};

}  // namespace ringlb
