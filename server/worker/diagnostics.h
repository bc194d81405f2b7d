// `ringlb ctl PATH connections`, the worker's part: a regular fd per proxied socket, installed
// only long enough to read its addresses and TCP_INFO (the one place besides upgrades where a
// direct descriptor becomes a regular fd), then the text goes to the acceptor.
#pragma once

#include <cstdint>
#include <string>

#include "server/proxy/driver.h"
#include "server/proxy/env.h"
#include "server/uring/ring.h"

namespace ringlb::worker {

// In a kDiagInstall's index, beside the connection id: the install is of its backend socket.
inline constexpr uint32_t kDiagBackendSide = 1u << 23;

class Diagnostics {
 public:
  Diagnostics(proxy::Env& env, uring::Ring& ring, const proxy::Driver& driver)
      : env_(env), ring_(ring), driver_(driver) {}
  Diagnostics(const Diagnostics&) = delete;
  Diagnostics& operator=(const Diagnostics&) = delete;

  void start();
  void on_install(uint32_t index, int res);

 private:
  void finish();

  proxy::Env& env_;
  uring::Ring& ring_;
  const proxy::Driver& driver_;
  uint32_t pending_ = 0;
  std::string text_;
};

}  // namespace ringlb::worker
