// The control socket protocol (a Unix stream socket, --control-socket PATH). Slow paths only.
//
// A client writes one command line; ringlb answers and closes, except for a takeover:
//   "listeners\n"   -> "ringlb-listeners N\n" + N lines "ADDR", with the N listening sockets
//                      attached (SCM_RIGHTS). The client registers them, then writes "ready\n";
//                      only then does the old process stop accepting and drain.
//   "connections\n" -> one line per proxied connection with its addresses and TCP_INFO.
#pragma once

#include <string>
#include <vector>

#include "server/address.h"

namespace ringlb {

struct InheritedListener {
  Address address;
  int fd = -1;  // a regular fd; the caller registers it and closes it
};

// Old process: sends the listeners message with `fds` attached. 0 or -errno.
int send_listeners(int conn_fd, const std::vector<Address>& addresses, const std::vector<int>& fds);

// New process: connects to `path`, asks for the listeners and receives them. On success returns
// 0 with *conn_fd still open (send "ready\n" on it once the listeners are in use); otherwise
// -errno (or -EPROTO for a wrong answer) and *error says what went wrong.
int request_listeners(const std::string& path, std::vector<InheritedListener>* out, int* conn_fd,
                      std::string* error);

// Blocking send of all of `s` on a control connection (retried on EINTR); false on error, with
// errno set.
bool write_all_fd(int fd, const std::string& s);

// Creates a listening Unix socket at `path`, replacing a stale file. Returns the fd or -errno.
int listen_unix(const std::string& path);

// `ringlb ctl PATH COMMAND`: sends COMMAND, prints the answer. Returns the process exit code.
int run_ctl(const std::string& path, const std::string& command);

// One diagnostics line for a socket, read through a regular fd: its local and peer addresses
// and TCP_INFO (rtt, retransmits, bytes).
std::string describe_socket(int fd);

}  // namespace ringlb
