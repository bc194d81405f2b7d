#include "tests/support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/support/net.h"

namespace ringlb::testing {
namespace {

// Starts argv[0] (a path, or a name looked up in PATH) with stdout and stderr going to the
// returned *out_fd, or to /dev/null when out_fd is null.
pid_t spawn(const std::vector<std::string>& argv, int* out_fd) {
  int pipefd[2] = {-1, -1};
  if (out_fd != nullptr && pipe2(pipefd, O_CLOEXEC) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    const int out = out_fd != nullptr ? pipefd[1] : open("/dev/null", O_WRONLY);
    dup2(out, 1);
    dup2(out, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  if (out_fd != nullptr) {
    close(pipefd[1]);
    *out_fd = pipefd[0];
  }
  return pid;
}

bool read_some(int fd, std::string* out, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return false;
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof(buf));
  if (n <= 0) return false;
  out->append(buf, static_cast<size_t>(n));
  return true;
}

int wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

ChildProcess::ChildProcess(const std::vector<std::string>& argv) : pid_(spawn(argv, nullptr)) {}

ChildProcess::~ChildProcess() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
}

TempDir::TempDir() {
  char path[] = "/tmp/ringlb-test-XXXXXX";
  if (mkdtemp(path) != nullptr) path_ = path;
}

TempDir::~TempDir() {
  if (!path_.empty()) std::filesystem::remove_all(path_);
}

std::string scratch_socket_path(const std::string& name) {
  static const TempDir dir;  // destroyed at exit, after every test of this process
  return dir.path() + "/" + name;
}

std::string runfile(const std::string& path) {
  const char* srcdir = getenv("TEST_SRCDIR");
  const char* workspace = getenv("TEST_WORKSPACE");
  if (srcdir != nullptr && workspace != nullptr) {
    return std::string(srcdir) + "/" + workspace + "/" + path;
  }
  return "bazel-bin/" + path;
}

RunResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  RunResult result;
  int fd = -1;
  pid_t pid = spawn(argv, &fd);
  if (pid < 0) return result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline && read_some(fd, &result.output, 100)) {
  }
  // Keep reading until EOF or the deadline.
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) > 0) {
      char buf[4096];
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) break;
      result.output.append(buf, static_cast<size_t>(n));
    } else if (std::chrono::steady_clock::now() > deadline) {
      break;
    } else {
      int status;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        close(fd);
        result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        return result;
      }
    }
  }
  close(fd);
  result.exit_code = wait_exit(pid, std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::max(deadline - std::chrono::steady_clock::now(),
                                                 std::chrono::steady_clock::duration(std::chrono::milliseconds(100)))));
  return result;
}

RinglbProcess::~RinglbProcess() {
  if (pid_ > 0) stop(SIGKILL, std::chrono::seconds(5));
  if (out_fd_ >= 0) close(out_fd_);
}

bool RinglbProcess::start(const std::vector<std::string>& args) {
  // RINGLB_BINARY runs the suite against another build (an older one, to show that a test fails
  // without the fix it covers).
  const char* other = getenv("RINGLB_BINARY");
  std::vector<std::string> argv = prefix_;
  argv.push_back(other != nullptr ? std::string(other) : runfile("server/ringlb"));
  bool has_metrics = false;
  for (const std::string& a : args) {
    argv.push_back(a);
    if (a.rfind("--metrics-listen", 0) == 0) has_metrics = true;
  }
  if (!has_metrics) {
    argv.push_back("--metrics-listen");
    argv.push_back("127.0.0.1:0");
  }
  size_t listens = 0;
  for (const std::string& a : args) listens += a == "--listen";
  pid_ = spawn(argv, &out_fd_);
  if (pid_ < 0) return false;
  const std::regex listen_re("listening on (?:\\[[^\\]]*\\]|[0-9.]+):([0-9]+)");
  const std::regex metrics_re("metrics on http://[^:]+:([0-9]+)/");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!read_some(out_fd_, &output_, 100)) {
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      continue;
    }
    if (output_.find(": loaded ") == std::string::npos) continue;  // the start-up summary, last
    ports_.clear();
    for (auto it = std::sregex_iterator(output_.begin(), output_.end(), listen_re);
         it != std::sregex_iterator(); ++it) {
      ports_.push_back(static_cast<uint16_t>(std::stoi((*it)[1])));
    }
    std::smatch m;
    if (std::regex_search(output_, m, metrics_re)) metrics_port_ = static_cast<uint16_t>(std::stoi(m[1]));
    // With listeners from a config file the command line names none: accept what was printed.
    return listens == 0 ? !ports_.empty() : ports_.size() == listens;
  }
  return false;
}

void RinglbProcess::drain_output(int timeout_ms) {
  if (out_fd_ < 0) return;
  while (read_some(out_fd_, &output_, timeout_ms)) {
  }
}

std::string RinglbProcess::output() {
  drain_output(0);
  return output_;
}

int RinglbProcess::stop(int sig, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  int code = wait_exit(pid_, timeout);
  pid_ = -1;
  drain_output(0);
  return code;
}

std::string http_get(uint16_t port, const std::string& path) {
  Fd fd = connect_loopback(port);
  if (!fd) return {};
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (!write_all(fd.get(), req.data(), req.size())) return {};
  std::string resp = read_to_eof(fd.get(), 5000);
  size_t body = resp.find("\r\n\r\n");
  return body == std::string::npos ? std::string() : resp.substr(body + 4);
}

std::string RinglbProcess::scrape() const { return http_get(metrics_port_, "/metrics"); }

double RinglbProcess::metric(const std::string& name, const std::vector<std::string>& labels) const {
  std::istringstream in(scrape());
  std::string line;
  double sum = 0;
  bool found = false;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.compare(0, name.size(), name) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != '{' && next != ' ') continue;
    bool all = true;
    for (const std::string& l : labels) all = all && line.find(l) != std::string::npos;
    if (!all) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
    found = true;
  }
  return found ? sum : -1;
}

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

ScopedEnv::ScopedEnv(std::vector<std::pair<std::string, std::string>> vars) : vars_(std::move(vars)) {
  for (const auto& [name, value] : vars_) setenv(name.c_str(), value.c_str(), 1);
}

ScopedEnv::~ScopedEnv() {
  for (const auto& [name, value] : vars_) unsetenv(name.c_str());
}

}  // namespace ringlb::testing
