// The control socket protocol (a Unix stream socket, --control-socket PATH). Slow paths only.
//
// A client writes one command line; ringlb answers and closes, except for a takeover:
//   "listeners\n"   -> "ringlb-listeners N\n" + N lines "ADDR", with the N listening sockets
//                      attached (SCM_RIGHTS) in batches of at most kListenersPerMessage: one
//                      sendmsg per batch, each carrying the address lines of its own fds (the
//                      first also the count line). The client registers them, then writes
//                      "ready\n"; only then does the old process stop accepting and drain.
//                      It closes the connection once its accepts are over; the new process
//                      waits for that before it arms its own (control_server.h says why).
//   "connections\n" -> one line per proxied connection with its addresses and TCP_INFO.
//   "backends\n"    -> a header line and one aligned row per backend: cluster, backend, state
//                      (with the slow-start ramp while one runs), weight, active, origin, check
//                      type, last check failure (backends_table.h).
//   "overrides\n"   -> the runtime state as command lines (runtime_api.h); a takeover asks for
//                      it first, on a connection of its own, and applies it before serving.
// and the rest of command.h's commands. A refusal is one line starting "error: ".
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "server/base/address.h"
#include "server/base/error.h"

namespace ringlb {

// Descriptors per message: below the kernel's SCM_MAX_FD (253) per SCM_RIGHTS message.
inline constexpr size_t kListenersPerMessage = 64;

struct InheritedListener {
  Address address;
  int fd = -1;  // a regular fd; the caller registers it and closes it
};

// Old process: sends the listeners message with `fds` attached, in batches. 0 or -errno.
// `flags` go to every send (the control server adds MSG_DONTWAIT: -EAGAIN rather than block).
int send_listeners(int conn_fd, const std::vector<Address>& addresses, const std::vector<int>& fds,
                   int flags = 0);

// New process: connects to `path`, asks for the listeners and receives them (every batch). On
// success *conn_fd is still open (send "ready\n" on it once the listeners are in use, then
// wait_handed_over()); otherwise the error says what went wrong (a refusal, such as another
// takeover in progress, is quoted).
Status request_listeners(const std::string& path, std::vector<InheritedListener>* out, int* conn_fd);

// New process, after "ready\n": waits until the old process closes `conn_fd`, which it does
// once its accepts are over, for at most `timeout_ms`. 0, -ETIMEDOUT, or -errno.
int wait_handed_over(int conn_fd, int timeout_ms);

// New process: asks the ringlb at `path` for its runtime state (the "overrides" answer, into
// *text). An error when it cannot be reached or refuses (an older ringlb does not know the
// command).
Status request_overrides(const std::string& path, std::string* text);

// Send of all of `s` on a control connection (retried on EINTR), blocking unless `flags` has
// MSG_DONTWAIT; false on error, with errno set.
bool write_all_fd(int fd, const std::string& s, int flags = 0);

// Creates a listening Unix socket at `path`, replacing a stale file. Returns the fd or -errno.
int listen_unix(const std::string& path);

// A blocking client connection to the control socket at `path` (5 s send and receive timeouts).
// Returns the fd or -errno.
int connect_unix(const std::string& path);

}  // namespace ringlb
