#include "server/control/ctl.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "server/control/protocol.h"
#include "server/log.h"

namespace ringlb {

int run_ctl(const std::string& path, const std::string& command) {
  const int fd = connect_unix(path);
  if (fd < 0) {
    log(LogLevel::kError, "ctl: cannot connect to %s: %s", path.c_str(), strerror(-fd));
    return 2;
  }
  if (!write_all_fd(fd, command + "\n")) {
    log(LogLevel::kError, "ctl: cannot send to %s: %s", path.c_str(), strerror(errno));
    close(fd);
    return 1;
  }
  char buf[16384];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    fwrite(buf, 1, static_cast<size_t>(n), stdout);
  }
  close(fd);
  return 0;
}

}  // namespace ringlb
