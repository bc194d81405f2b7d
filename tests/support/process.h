// Runs the real ringlb binary as a child process for end-to-end tests.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace ringlb::testing {

// Polls `pred` every 20 ms until it is true or `timeout` has passed; returns its last value.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

// Path of a binary built by Bazel and listed in the test's data, e.g. "server/ringlb".
std::string runfile(const std::string& path);

struct RunResult {
  int exit_code = -1;  // -1: killed by a signal or did not finish
  std::string output;  // stdout and stderr
};

// Runs a command to completion (bounded by `timeout`), capturing its output.
RunResult run_command(const std::vector<std::string>& argv,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20));

// A helper program (nginx, HAProxy, Prometheus) for the length of a test: started by the
// constructor (argv[0] looked up in PATH, output discarded), killed and reaped by the destructor.
class ChildProcess {
 public:
  explicit ChildProcess(const std::vector<std::string>& argv);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }  // to signal it (SIGHUP, SIGSTOP)

 private:
  pid_t pid_;
};

// A fresh directory under /tmp (short enough for Unix socket paths), removed with everything in
// it when the scope ends. path() is empty if it could not be made.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// PATH of a Unix socket NAME in a directory of this test process, under /tmp because socket
// paths are limited to 107 bytes and Bazel's temp dir is longer. The directory and everything in
// it is removed when the test process exits, so a daemon killed with SIGKILL leaves nothing.
std::string scratch_socket_path(const std::string& name);

class RinglbProcess {
 public:
  RinglbProcess() = default;
  ~RinglbProcess();
  RinglbProcess(const RinglbProcess&) = delete;
  RinglbProcess& operator=(const RinglbProcess&) = delete;

  // Starts ringlb with `args` (the binary path is added) and waits until it reports its
  // listeners, with --metrics-listen 127.0.0.1:0 added unless args name one. False on failure;
  // output() then says why.
  bool start(const std::vector<std::string>& args);
  // Runs ringlb under `prefix` (e.g. {"setpriv", "--reuid=nobody", ...}) at the next start().
  void set_prefix(std::vector<std::string> prefix) { prefix_ = std::move(prefix); }
  pid_t pid() const { return pid_; }
  uint16_t port(size_t i = 0) const { return ports_.at(i); }
  uint16_t metrics_port() const { return metrics_port_; }

  // Sends `sig` and waits up to `timeout` for the exit; returns the exit code (-1 if it had to be
  // killed).
  int stop(int sig, std::chrono::milliseconds timeout = std::chrono::seconds(15));
  // Everything ringlb has printed so far.
  std::string output();

  // GET /metrics; empty on failure.
  std::string scrape() const;
  // Sum of the samples of `name` whose labels contain every `label=value` given (e.g.
  // {"worker=\"0\""}); -1 when no sample matched.
  double metric(const std::string& name, const std::vector<std::string>& labels = {}) const;
  // ringlb_connections_closed_total for one close reason (e.g. "idle_timeout").
  double closed_total(const std::string& reason) const {
    return metric("ringlb_connections_closed_total", {"reason=\"" + reason + "\""});
  }

 private:
  void drain_output(int timeout_ms);

  std::vector<std::string> prefix_;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string output_;
  std::vector<uint16_t> ports_;
  uint16_t metrics_port_ = 0;
};

// Sets environment variables for the processes started in its scope (children inherit them),
// e.g. ringlb's test hooks; unsets them when the scope ends.
class ScopedEnv {
 public:
  explicit ScopedEnv(std::vector<std::pair<std::string, std::string>> vars);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::vector<std::pair<std::string, std::string>> vars_;
};

// Plain HTTP/1.0 GET against 127.0.0.1:port; the body, or empty on failure.
std::string http_get(uint16_t port, const std::string& path);

// Resident set size of a process in KiB.
long rss_kib(pid_t pid);

}  // namespace ringlb::testing
