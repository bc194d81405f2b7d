// A real etcd (Debian's etcd-server, 3.4) for end-to-end tests: one member on loopback ports
// picked at random, with a temporary data directory, killed and removed with the object. kill()
// and start() again keep the data directory, as an etcd that crashed and came back. Writes go
// through etcdctl (etcd-client), as an operator's would.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "tests/support/process.h"

namespace ringlb::testing {

class EtcdServer {
 public:
  EtcdServer();  // picks the ports and the directory; start() runs it
  ~EtcdServer();
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  // Before start(): serve https only, with a certificate for 127.0.0.1 from a fresh CA, and
  // require client certificates from that CA (files in tls_dir(): ca.pem, client.pem,
  // client.key). False if openssl failed.
  bool enable_tls();
  std::string tls_dir() const { return dir_.path() + "/tls"; }

  // Starts etcd and waits (up to 10 s) until it answers /health. False on failure.
  bool start();
  // SIGKILL: no goodbye on its connections, as a crash or a lost machine.
  void kill();
  std::string endpoint() const {
    return (tls_ ? "https" : "http") + std::string("://127.0.0.1:") + std::to_string(client_port_);
  }
  uint16_t client_port() const { return client_port_; }

  bool put(const std::string& key, const std::string& value);
  bool del(const std::string& key);
  // The store's current revision (0 on failure).
  int64_t revision();
  // Compacts the history up to `revision`: watches resuming below it are canceled.
  bool compact(int64_t revision);
  // Turns on etcd's auth with a root user (whom later writes use) and `user`, who may read
  // `prefix` only.
  bool enable_auth(const std::string& user, const std::string& password, const std::string& prefix);

 private:
  bool ctl(std::vector<std::string> args, std::string* out = nullptr);

  TempDir dir_;
  uint16_t client_port_ = 0, peer_port_ = 0;
  std::unique_ptr<ChildProcess> process_;
  std::string root_;  // "root:PASSWORD" once auth is on
  bool tls_ = false;
};

}  // namespace ringlb::testing
