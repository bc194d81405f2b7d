#include "server/process/takeover.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "server/base/log.h"
#include "server/control/runtime_api.h"

namespace ringlb::process {
namespace {

// How long a takeover waits for the old process to confirm that its accepts are over (it takes
// a round trip and a cancel: well under a millisecond here), while clients queue in the backlog.
constexpr int kHandOverWaitMs = 2000;

}  // namespace

Takeover::Takeover(const std::string& path, discovery::ClusterPublisher& publisher) : path_(path) {
  if (path_.empty()) return;
  // The runtime state first, on a connection of its own (the listeners' one ends the old
  // process's control socket): drains, maintenance and runtime weights carry over.
  std::string state;
  if (const Status got = request_overrides(path_, &state); !got.ok()) {
    log(LogLevel::kWarning, "takeover: runtime state not carried over: %s", got.message().c_str());
  } else {
    control::restore_overrides(publisher, state);
  }
  int conn = -1;
  if (const Status taken = request_listeners(path_, &inherited_, &conn); !taken.ok()) {
    log(LogLevel::kWarning, "takeover: %s; binding the listeners here", taken.message().c_str());
  }
  conn_.reset(conn);
}

Takeover::~Takeover() { release_listeners(); }

void Takeover::release_listeners() {
  for (InheritedListener& l : inherited_) {
    if (l.fd >= 0) close(l.fd);
    l.fd = -1;
  }
}

void Takeover::hand_over() {
  if (!conn_) return;
  static const char kReady[] = "ready\n";
  if (send(conn_.get(), kReady, sizeof(kReady) - 1, MSG_NOSIGNAL) < 0) {
    log(LogLevel::kWarning, "takeover: cannot tell %s we are ready: %s", path_.c_str(), strerror(errno));
  } else if (int ret = wait_handed_over(conn_.get(), kHandOverWaitMs); ret < 0) {
    // Our accepts are armed in any case: the old process may only be slow (a client woken there
    // as it stopped could then wait for the next one; protocol.h).
    log(LogLevel::kWarning, "takeover: %s did not confirm it stopped accepting (%s); accepting anyway",
        path_.c_str(), strerror(-ret));
  } else {
    log(LogLevel::kInfo, "took over %zu listeners from %s", inherited_.size(), path_.c_str());
  }
  conn_.reset();
}

}  // namespace ringlb::process
