// One worker's sessions over the fake seam: a real configuration published into real shared
// state, the real driver and phases, and helpers that find a request and feed back its
// completion, as the kernel would.
#pragma once

#include <liburing.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "server/proxy/driver.h"
#include "server/proxy/env.h"
#include "server/proxy/snapshot_cache.h"
#include "server/proxy/tags.h"
#include "server/runtime/publish.h"
#include "server/runtime/shared_state.h"
#include "tests/proxy/fake_ops.h"

namespace ringlb::proxy::testing {

inline constexpr uint64_t kMs = 1'000'000ULL;
inline constexpr uint64_t kSec = 1'000'000'000ULL;
inline constexpr int kClientSlot = 100;

// The default: one listener "in" on 127.0.0.1:8000 to cluster "web" with backends
// 127.0.0.1:9001 and 127.0.0.1:9002 (round robin, health checks off), 8 buffers of 1 KiB.
Config default_config();
ListenConfig listener(const std::string& name, const std::string& address, const std::string& cluster);
ClusterConfig cluster(const std::string& name, const std::vector<std::string>& backends);
Cidr cidr(const std::string& text);
sockaddr_in6 ipv4(const std::string& address, uint16_t port);

// A TLS 1.3 ClientHello in one record, asking for `server_name` ("" for none).
std::string client_hello(const std::string& server_name);

class Harness {
 public:
  explicit Harness(Config config = default_config(), uint32_t capacity = 16);
  ~Harness();

  // A client arrives in `slot` on listener `listener`: its session id.
  uint32_t open(int slot = kClientSlot, uint16_t listener = 0);
  // The same, from `from`: a peer-name request (admit asks where a rule needs it) is answered.
  uint32_t arrive(int slot = kClientSlot, const std::string& from = "127.0.0.2");
  const Session& session(uint32_t id) const { return driver->sessions()[id]; }

  // Requests made so far; `from` skips the first ones (see mark()).
  size_t mark() const { return ops->requests.size(); }
  std::vector<Request> since(size_t from) const;
  // The last request of `kind` (fails the test when none: check has()).
  const Request& last(Request::Kind kind) const;
  // The last request of `kind` on `slot`.
  const Request& last_on(Request::Kind kind, int slot) const;
  bool has(Request::Kind kind, size_t from = 0) const;
  size_t count(Request::Kind kind, size_t from = 0) const;

  // Feeds back the completion of request `r`.
  void complete(const Request& r, int res, uint32_t flags = 0);
  // A recv of `r` that received `bytes` (empty: EOF), in its granted buffer or one from the
  // ring (-ENOBUFS when the ring is empty). `more`: a multishot recv stays armed.
  void receive(const Request& r, const std::string& bytes, bool more = false);
  // A peer-name request answered with `addr`.
  void answer_peer(const Request& r, const sockaddr_in6& addr);
  // The socket for a kSocket request: its new slot.
  void give_socket(const Request& r, int slot);
  // Everything the batch left for its end (shutdowns), then retries and the queue.
  void end_batch();
  // Moves the clock and fires the timers that are due.
  void advance(uint64_t ns);
  // From the hand-off to a connected session with both recvs armed (backend slot `backend`).
  uint32_t pumping(int client = kClientSlot, int backend = 200);

  uint64_t closed(metrics::CloseReason reason) const;

  Config config;
  std::unique_ptr<SharedState> shared;
  std::unique_ptr<FakeOps> ops;
  std::unique_ptr<Env> env;
  std::unique_ptr<SnapshotCache> snapshots;
  std::unique_ptr<Driver> driver;
};

}  // namespace ringlb::proxy::testing
