// What UDP listeners count, by listener index: flows live and ended, datagrams and bytes each
// way, and datagrams dropped by reason. One UdpStats per worker (WorkerStats::udp), written by
// that worker alone with LocalCounter's single-writer stores; a scrape sums the workers
// (metrics/udp_export.h). Labels stay bounded: listener, direction, reason; never the client.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "metrics/local_counter.h"

namespace ringlb::metrics {

// Why a datagram was not forwarded (label reason= of ringlb_udp_dropped_total).
#define RINGLB_UDP_DROP_REASONS(X)                                                              \
  X(truncated)         /* bigger than the receive buffer (MSG_TRUNC): never forwarded cut */    \
  X(no_backend)        /* no backend up to take a new flow */                                   \
  X(denied)            /* the listener's allow/deny */                                          \
  X(source_flows)      /* max-connections-per-source: the client has that many flows */         \
  X(source_rate)       /* connection-rate-per-source: new flows too fast */                     \
  X(source_table_full) /* the per-source table has no room for a new client */                  \
  X(send_error)        /* sendmsg to the backend or back to the client failed */               \
  X(backend_refused)   /* the backend's ICMP port unreachable (ECONNREFUSED on its socket) */   \
  X(no_flow)           /* a backend's datagram for a flow that has ended */                     \
  X(draining)          /* a new client while the listener drains */

enum class UdpDrop : uint8_t {
#define RINGLB_ENUM(name) k_##name,
  RINGLB_UDP_DROP_REASONS(RINGLB_ENUM)
#undef RINGLB_ENUM
      kCount
};
const char* udp_drop_name(UdpDrop reason);

// Why a flow ended (label reason= of ringlb_udp_flows_ended_total).
#define RINGLB_UDP_FLOW_ENDS(X)                                                      \
  X(idle_timeout)    /* no datagram either way for idle-timeout */                   \
  X(responses)       /* the backend sent `responses` datagrams */                    \
  X(evicted)         /* max-flows: the least recently active made room */            \
  X(backend_refused) /* ICMP port unreachable: the backend is not there */           \
  X(drain)           /* the listener or ringlb stopped */                            \
  X(error)           /* its upstream socket failed */

enum class UdpFlowEnd : uint8_t {
#define RINGLB_ENUM(name) k_##name,
  RINGLB_UDP_FLOW_ENDS(RINGLB_ENUM)
#undef RINGLB_ENUM
      kCount
};
const char* udp_flow_end_name(UdpFlowEnd reason);

// Label direction=: client to backend, backend to client.
enum class UdpDirection : uint8_t { kToBackend, kToClient, kCount };
const char* udp_direction_name(UdpDirection d);

// One listener's counts in one worker.
struct UdpListenerStats {
  LocalCounter flows_active;  // gauge: raised when a flow starts, lowered when it ends
  std::array<LocalCounter, static_cast<size_t>(UdpDirection::kCount)> datagrams{}, bytes{};
  std::array<LocalCounter, static_cast<size_t>(UdpDrop::kCount)> dropped{};
  std::array<LocalCounter, static_cast<size_t>(UdpFlowEnd::kCount)> flows_ended{};

  void flow_started() { flows_active.add(); }
  void flow_ended(UdpFlowEnd why) {
    flows_active.sub();
    flows_ended[static_cast<size_t>(why)].add();
  }
  void datagram(UdpDirection d, size_t n) {
    datagrams[static_cast<size_t>(d)].add();
    bytes[static_cast<size_t>(d)].add(n);
  }
  void drop(UdpDrop why) { dropped[static_cast<size_t>(why)].add(); }
};

// One worker's: by listener index (as many as the registry has listener names).
struct UdpStats {
  UdpStats() = default;
  explicit UdpStats(size_t listeners) : listeners(listeners) {}
  std::vector<UdpListenerStats> listeners;
  UdpListenerStats& of(size_t listener) { return listeners[listener]; }
};

// Which listener indexes are UDP, set once by whoever opens one (a listener index keeps its
// protocol for life: a reload that changes it takes a new index). The scrape exports the UDP
// families for these only.
class UdpListenerSet {
 public:
  UdpListenerSet() = default;
  explicit UdpListenerSet(size_t listeners) : udp_(listeners) {}
  void mark(size_t listener) {
    if (listener < udp_.size()) udp_[listener].store(true, std::memory_order_release);
  }
  bool is_udp(size_t listener) const {
    return listener < udp_.size() && udp_[listener].load(std::memory_order_acquire);
  }

 private:
  std::vector<std::atomic<bool>> udp_;
};

}  // namespace ringlb::metrics
