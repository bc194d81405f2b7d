// A blocking stand-in for the connection driver, for tests against real TLS peers (openssl
// s_client and s_server, Python's ssl, HAProxy): it moves a Stream's bytes over a loopback
// socket with poll(), as the worker will with its ring, and reports what happened.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/tls/server_context.h"
#include "server/tls/stream.h"
#include "tests/support/net.h"

namespace ringlb::tls::pki {

struct DriveOptions {
  std::string send;                   // written once the handshake is done
  bool shutdown_after_send = false;   // then close_notify
  bool echo = false;                  // every plaintext read is written back
  bool shutdown_on_eof = false;       // the peer's EOF is answered with close_notify
  size_t expect_bytes = 0;            // stop once this much plaintext came (a peer that stays open)
  int timeout_ms = 5000;
};

struct DriveResult {
  std::string received;
  bool handshake = false;  // completed
  bool eof = false;        // the peer's close_notify (or FIN after the handshake)
  bool truncated = false;  // a FIN without close_notify
  bool error = false;
  bool timed_out = false;
  // The stream's view, copied before it goes.
  Failure failure = Failure::kNone;
  std::string error_text, alpn, version, server_name, peer_cn, certificate_file;
  bool resumed = false;
  ProxyTlvs tlvs;
};

// Runs `s` over the connected socket `fd` until the peer's EOF or an error (with the output
// sent), or the timeout.
DriveResult drive(int fd, Stream& s, const DriveOptions& options);

// A TLS server on 127.0.0.1 (port()) that serves each connection in turn with one worker's
// context of `set` (the next one each time when `rotate_workers`), records what happened, and
// runs until destroyed.
class TlsServer {
 public:
  TlsServer(std::shared_ptr<const ServerContextSet> set, DriveOptions options, bool rotate_workers = false);
  ~TlsServer();
  uint16_t port() const { return port_; }
  // The connections done so far.
  std::vector<DriveResult> results() const;
  // Waits until `n` connections are done (or 10 s).
  bool wait_for(size_t n) const;

 private:
  void run();
  std::shared_ptr<const ServerContextSet> set_;
  DriveOptions options_;
  bool rotate_;
  testing::Fd listener_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<DriveResult> results_;
  std::thread thread_;
};

}  // namespace ringlb::tls::pki
