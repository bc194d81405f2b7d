// A UDP listener's flows in one worker: a flow is what a client's datagrams to one local address
// have in common, keyed by the 4-tuple (client address and port, local address and port), as
// Envoy keys its udp_proxy sessions. Each holds the backend it was given, the caller's upstream
// socket (a slot: replies arrive there, so flows are found by it too), datagram and byte counts
// both ways, the replies counted for `responses`, and its last activity.
//
// Bounded: at max-flows, adding a flow first ends the least recently active one (returned, so its
// socket can be closed and it logged). Idle flows expire in the same order: the LRU list is also
// the idle-timeout order (one timeout per table), so the next deadline is the tail's and expiry
// pops from the tail. Pure: no sockets, no clock (the caller passes CLOCK_MONOTONIC ns), no
// locks (one worker owns a table). Flow ids are slots in the table, reused after a flow ends; a
// flow's generation tells a late completion for an ended flow from the flow now in its slot.
//
// Memory: 130.5 bytes a flow with 100,000 flows (measured from malloc's counts by
// //tests/udp:flow_table_test, MemoryPerFlow: 120 for the Flow, 5.2 for its hash bucket, 5.2 for
// its upstream slot's index entry), so max-flows = 100,000 bounds a listener's flow table in a
// worker at 12.5 MiB. Storage grows with the flows (doubling, the flows capped at max-flows) and
// is kept. The upstream sockets are the kernel's memory, not counted here.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ringlb::udp {

// An address and port; IPv4 as ::ffff:a.b.c.d, so both families share one key type.
struct Endpoint {
  std::array<uint8_t, 16> addr{};
  uint16_t port = 0;  // host order
  bool operator==(const Endpoint&) const = default;
};

struct FlowKey {
  static constexpr uint32_t kAnyBackend = UINT32_MAX;
  Endpoint client;
  Endpoint local;  // the address the client sent to (IP_PKTINFO on a wildcard listener)
  uint16_t family = AF_INET;  // the client's sockaddr family, to give its address back
  // kAnyBackend: one flow per client (the default). With per-datagram balancing each datagram
  // picks a backend, and a client has one flow per backend it was sent to: the backend's id.
  uint32_t backend_key = kAnyBackend;
  bool operator==(const FlowKey&) const = default;
};

// The key of a datagram from `client` to `local` (AF_INET or AF_INET6; a v4-mapped local is
// fine). False for another family.
bool flow_key(const sockaddr* client, const sockaddr* local, FlowKey* out);
// An endpoint as a sockaddr of `family` (AF_INET: the v4-mapped address unwrapped); its length.
socklen_t to_sockaddr(const Endpoint& e, uint16_t family, sockaddr_storage* out);
// "1.2.3.4:53" or "[::1]:53", for `ringlb ctl` and the access log.
std::string to_string(const Endpoint& e, uint16_t family);

struct Flow {
  FlowKey key;
  uint32_t backend = 0;   // the caller's backend id
  int32_t upstream = -1;  // the caller's upstream socket slot; -1 = none yet
  uint32_t replies = 0;   // datagrams from the backend
  uint32_t generation = 0;  // odd while the flow lives
  // The table's links: the LRU list (prev toward the most recent), the hash chain (and the
  // free list once ended). Here, so that the 64-bit fields below need no padding.
  uint32_t lru_prev = 0, lru_next = 0, chain = 0;
  uint64_t datagrams_in = 0, bytes_in = 0;    // client to backend
  uint64_t datagrams_out = 0, bytes_out = 0;  // backend to client
  uint64_t created_ns = 0;
  uint64_t last_ns = 0;  // the last datagram either way
};

class FlowTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  // `max_flows` (at least 1): the bound; `idle_ns`: a flow with no datagram either way for this
  // long expires.
  FlowTable(uint32_t max_flows, uint64_t idle_ns);
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  // The flow of `key`, or kNone.
  uint32_t find(const FlowKey& key) const;
  // The flow whose upstream socket is `slot`, or kNone.
  uint32_t find_upstream(int32_t slot) const;

  struct Added {
    uint32_t id = kNone;
    bool evicted = false;
    Flow evicted_flow;  // when `evicted`: the flow ended to make room (its upstream to close)
  };
  // A new flow for `key` (not in the table) on `backend`, active at `now_ns`. At max-flows, the
  // least recently active flow is removed first and returned.
  Added add(const FlowKey& key, uint32_t backend, uint64_t now_ns);

  // Its upstream socket (-1: none). A slot belongs to one flow at a time.
  void set_upstream(uint32_t id, int32_t slot);
  // A datagram of `bytes` from the client, at `now_ns`: counted, and the flow is the most recent.
  void client_datagram(uint32_t id, size_t bytes, uint64_t now_ns);
  // A datagram from the backend; returns the replies so far (a flow ends at `responses`).
  uint32_t backend_datagram(uint32_t id, size_t bytes, uint64_t now_ns);

  // Ends a flow; returns it as it was (to close its socket, log and count it).
  Flow remove(uint32_t id);

  const Flow& get(uint32_t id) const { return flows_[id]; }
  // Whether `id` is a flow now, and the one of `generation` (a late completion's check).
  bool live(uint32_t id, uint32_t generation) const;

  // When the least recently active flow goes idle; UINT64_MAX when there is none.
  uint64_t next_deadline() const;
  // Ends every flow idle at `now_ns`, least recent first, after calling on_expired(const Flow&)
  // for each (which must not change the table). Returns how many.
  template <typename F>
  size_t expire(uint64_t now_ns, F&& on_expired) {
    size_t n = 0;
    while (tail_ != kNone && flows_[tail_].last_ns + idle_ns_ <= now_ns) {
      on_expired(static_cast<const Flow&>(flows_[tail_]));
      remove(tail_);
      ++n;
    }
    return n;
  }
  // A reload's new limits: flows over the new bound end now, least recent first, through
  // on_evicted(const Flow&) as expire() does.
  template <typename F>
  size_t configure(uint32_t max_flows, uint64_t idle_ns, F&& on_evicted) {
    max_flows_ = max_flows == 0 ? 1 : max_flows;
    idle_ns_ = idle_ns;
    size_t n = 0;
    while (size_ > max_flows_) {
      on_evicted(static_cast<const Flow&>(flows_[tail_]));
      remove(tail_);
      ++n;
    }
    return n;
  }

  // Most recent first: f(uint32_t id, const Flow&) (`ringlb ctl`).
  template <typename F>
  void for_each(F&& f) const {
    for (uint32_t id = head_; id != kNone; id = flows_[id].lru_next) f(id, flows_[id]);
  }

  size_t size() const { return size_; }
  uint32_t max_flows() const { return max_flows_; }
  uint64_t idle_ns() const { return idle_ns_; }
  // Heap bytes the table holds (flows, hash buckets, the upstream index).
  size_t memory_bytes() const;

 private:
  uint32_t bucket_of(const FlowKey& key) const;
  void grow_buckets();
  void unlink_lru(uint32_t id);
  void push_front(uint32_t id);
  void touch(uint32_t id, uint64_t now_ns);

  uint32_t max_flows_;
  uint64_t idle_ns_;
  std::vector<Flow> flows_;         // by id; never shrinks
  std::vector<uint32_t> buckets_;   // hash chains' heads (a power of two of them)
  std::vector<uint32_t> upstream_;  // upstream slot -> flow id
  uint32_t free_ = kNone;           // ended flows' slots, chained through `chain`
  uint32_t head_ = kNone, tail_ = kNone;  // most and least recently active
  size_t size_ = 0;
};

}  // namespace ringlb::udp
