// What `ringlb ctl PATH connections` prints about each socket.
#pragma once

#include <string>

namespace ringlb {

// One diagnostics line for a socket, read through a regular fd: its local and peer addresses
// and TCP_INFO (rtt, retransmits, bytes).
std::string describe_socket(int fd);

}  // namespace ringlb
