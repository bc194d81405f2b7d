#include "server/control/diagnostics.h"

#include <linux/tcp.h>  // the kernel's tcp_info: glibc's lacks the byte counters
#include <netinet/in.h>
#include <sys/socket.h>

#include <sstream>

#include "server/base/address.h"

namespace ringlb {

std::string describe_socket(int fd) {
  sockaddr_storage local{}, peer{};
  socklen_t llen = sizeof(local), plen = sizeof(peer);
  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen);
  getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen);
  tcp_info info{};
  socklen_t ilen = sizeof(info);
  std::ostringstream out;
  out << "local=" << address_from_sockaddr(reinterpret_cast<sockaddr*>(&local), llen).to_string()
      << " peer=" << address_from_sockaddr(reinterpret_cast<sockaddr*>(&peer), plen).to_string();
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &ilen) == 0) {
    out << " rtt_us=" << info.tcpi_rtt << " rttvar_us=" << info.tcpi_rttvar
        << " retransmits=" << info.tcpi_total_retrans << " bytes_acked=" << info.tcpi_bytes_acked
        << " bytes_received=" << info.tcpi_bytes_received;
  }
  return out.str();
}

}  // namespace ringlb
