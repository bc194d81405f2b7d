#include "server/control/ctl.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <nlohmann/json.hpp>

#include "server/control/command.h"
#include "server/control/protocol.h"
#include "server/base/log.h"

namespace ringlb {

namespace {

// `json`: the command was sent as "json COMMAND", so a failure is printed as {"error": ...} on
// stdout too, where a script reads the answer.
int fail(bool json, int code, const std::string& why) {
  log(LogLevel::kError, "ctl: %s", why.c_str());
  if (json) {
    const std::string text = nlohmann::json{{"error", why}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    printf("%s\n", text.c_str());
  }
  return code;
}

int send_line(const std::string& path, const std::string& line) {
  const bool json = line.compare(0, 5, "json ") == 0;
  const int fd = connect_unix(path);
  if (fd < 0) return fail(json, 2, "cannot connect to " + path + ": " + strerror(-fd));
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
  if (!sent && answer.empty()) return fail(json, 1, "cannot send to " + path + ": " + strerror(send_errno));
  if (answer == "busy\n") {
    return fail(json, 1, "busy: every place is taken by other control clients, or ringlb is stopping; try again");
  }
  if (json) {
    fwrite(answer.data(), 1, answer.size(), stdout);
    // A refusal is an object whose only field is "error".
    static constexpr std::string_view kJsonError = "{\"error\":";
    if (answer.empty()) return fail(false, 1, "no answer");
    if (answer.rfind(kJsonError, 0) == 0) {
      const nlohmann::json refusal = nlohmann::json::parse(answer, nullptr, false);
      const bool has_text = refusal.is_object() && refusal["error"].is_string();
      return fail(false, 1, has_text ? refusal["error"].get<std::string>() : answer.substr(0, answer.size() - 1));
    }
    return 0;
  }
  static constexpr std::string_view kError = "error: ";
  // (An empty answer is one: `overrides` with none in effect.)
  if (answer.rfind(kError, 0) == 0) {
    std::string why = answer.substr(kError.size());
    while (!why.empty() && why.back() == '\n') why.pop_back();
    return fail(false, 1, why);
  }
  fwrite(answer.data(), 1, answer.size(), stdout);
  return 0;
}

}  // namespace

int run_ctl(const std::string& path, const std::vector<std::string>& words) {
  if (!words.empty() && words[0] == "--json") {
    if (words.size() == 1) return fail(true, 2, "--json takes a command (connections, backends, overrides, set-weight, drain, disable, enable)");
    std::vector<std::string> command = words;
    command[0] = "json";
    return send_line(path, control::join_words(command));
  }
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
