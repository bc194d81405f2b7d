// What every piece of one worker shares: its ring and tables, its clock, its counters, and the
// connection slots. One per worker thread; nothing here is touched by another thread except
// through SharedState's atomics.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <vector>

#include "metrics/stats.h"
#include "server/proxy/conn.h"
#include "server/runtime/shared_state.h"
#include "server/uring/buf_ring.h"
#include "server/uring/file_table.h"
#include "server/uring/ring.h"
#include "server/uring/user_data.h"

namespace ringlb::proxy {
class Intake;
class Lifecycle;
class Pump;
class SniInspector;
class SnapshotCache;
class Upstream;
}  // namespace ringlb::proxy

namespace ringlb::worker {

class AccessBatch;
class BufferPool;
class TimerWheel;

// In a connection's user_data index (24 bits): the connection in the low 16, its generation in
// the high 8. A worker holds at most 65535 connections (its table of 2 per connection is capped
// far lower by the open-file limit anyway).
inline constexpr uint32_t kConnBits = 16;
inline constexpr uint32_t kMaxConnsPerWorker = (1u << kConnBits) - 1;
inline constexpr uint32_t conn_of(uint32_t index) { return index & ((1u << kConnBits) - 1); }
inline constexpr uint8_t gen_of(uint32_t index) { return static_cast<uint8_t>(index >> kConnBits); }

struct Context {
  Context(SharedState& s, unsigned i)
      : shared(s),
        config(s.config),
        index(i),
        slot(*s.workers[i]),
        stats(*s.registry->workers[i]) {}
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  SharedState& shared;
  const Config& config;
  const unsigned index;
  WorkerSlot& slot;
  metrics::WorkerStats& stats;

  uring::Ring ring;
  uring::FileTable table;
  uring::BufRing buffers;

  uint64_t now_ns = 0;  // read once per loop iteration
  uint32_t now_us = 0;
  bool draining = false;
  uint64_t drain_deadline_ns = 0;
  // The kernel dropped completions (-EBADR): closing connections may wait for one that never
  // comes, so they get a deadline after which they are freed anyway.
  bool completions_lost = false;

  std::vector<proxy::Conn> conns;           // by connection id
  std::vector<sockaddr_in6> peer_names;     // by connection: the client's address
  std::vector<sockaddr_in6> proxied_dsts;   // sized on first use: an accept-proxy header's dst
  // Sized on first use: the server name an SNI listener's client asked for (at most
  // kMaxServerName bytes, for the access log), valid while Conn::has_server_name.
  std::vector<std::string> server_names;
  uint32_t live = 0;
  // While a slot audit runs: slots this worker closed since it began (see SlotAudit).
  bool auditing = false;
  std::vector<int> closed_during_audit;

  // The pieces, wired up by the Worker that owns them.
  BufferPool* pool = nullptr;
  TimerWheel* timers = nullptr;
  AccessBatch* access = nullptr;
  proxy::SnapshotCache* snapshots = nullptr;
  proxy::Lifecycle* lifecycle = nullptr;
  proxy::Intake* intake = nullptr;
  proxy::SniInspector* sni = nullptr;
  proxy::Upstream* upstream = nullptr;
  proxy::Pump* pump = nullptr;

  // user_data for an op of connection `id` (its generation included) or of anything else.
  uint64_t data(Tag tag, uint32_t id) const {
    return encode(tag, id | (uint32_t{conns[id].gen} << kConnBits), now_us);
  }
  uint64_t data_plain(Tag tag, uint32_t index_value) const { return encode(tag, index_value, now_us); }

  // Marks `sqe` quiet (IOSQE_CQE_SKIP_SUCCESS, see Tag::kQuiet*), but for one in kSampleEvery
  // that still posts its completion, for the latency histograms.
  void quiet(io_uring_sqe* sqe, Tag tag);
  // close_direct without a completion on success; the slot is counted closed at once.
  void close_slot(int slot);

 private:
  uint32_t sample_ = 0;
};

}  // namespace ringlb::worker
