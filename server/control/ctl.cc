#include "server/control/ctl.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "server/control/command.h"
#include "server/control/protocol.h"
#include "server/base/log.h"

namespace ringlb {

namespace {

int send_line(const std::string& path, const std::string& line) {
  const int fd = connect_unix(path);
  if (fd < 0) {
    log(LogLevel::kError, "ctl: cannot connect to %s: %s", path.c_str(), strerror(-fd));
    return 2;
  }
  const bool sent = write_all_fd(fd, line + "\n");
  const int send_errno = errno;
  // The whole answer first: its first bytes say whether it is a refusal. Read even when the
  // send failed: a server with no place for us writes "busy" and closes, maybe before we send.
  std::string answer;
  char buf[16384];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), sent ? 0 : MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    answer.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (!sent && answer.empty()) {
    log(LogLevel::kError, "ctl: cannot send to %s: %s", path.c_str(), strerror(send_errno));
    return 1;
  }
  static constexpr std::string_view kError = "error: ";
  // (An empty answer is one: `overrides` with none in effect.)
  if (answer.rfind(kError, 0) == 0 || answer == "busy\n") {
    std::string why = answer.rfind(kError, 0) == 0 ? answer.substr(kError.size())
                                                   : "busy: every place is taken by other control clients, or ringlb is stopping; try again";
    while (!why.empty() && why.back() == '\n') why.pop_back();
    log(LogLevel::kError, "ctl: %s", why.c_str());
    return 1;
  }
  fwrite(answer.data(), 1, answer.size(), stdout);
  return 0;
}

}  // namespace

int run_ctl(const std::string& path, const std::vector<std::string>& words) {
  return send_line(path, control::join_words(words));
}

int run_ctl_lines(const std::string& path, FILE* in) {
  int worst = 0;
  char* buf = nullptr;
  size_t cap = 0;
  for (ssize_t n; (n = getline(&buf, &cap, in)) >= 0;) {
    std::string line(buf, static_cast<size_t>(n));
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line.empty()) continue;
    const int rc = send_line(path, line);
    worst = std::max(worst, rc);
    if (rc == 2) break;
  }
  free(buf);
  return worst;
}

}  // namespace ringlb
