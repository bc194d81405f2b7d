#include "server/udp/flow_table.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "balancer/hash.h"

namespace ringlb::udp {
namespace {

constexpr uint32_t kFirstBuckets = 64;

bool endpoint_of(const sockaddr* sa, Endpoint* out) {
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    out->addr = {};
    out->addr[10] = out->addr[11] = 0xff;
    memcpy(&out->addr[12], &in->sin_addr, 4);
    out->port = ntohs(in->sin_port);
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    memcpy(out->addr.data(), &in6->sin6_addr, 16);
    out->port = ntohs(in6->sin6_port);
    return true;
  }
  return false;
}

}  // namespace

bool flow_key(const sockaddr* client, const sockaddr* local, FlowKey* out) {
  FlowKey key;
  if (!endpoint_of(client, &key.client) || !endpoint_of(local, &key.local)) return false;
  key.family = client->sa_family;
  *out = key;
  return true;
}

socklen_t to_sockaddr(const Endpoint& e, uint16_t family, sockaddr_storage* out) {
  memset(out, 0, sizeof(*out));
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(out);
    in->sin_family = AF_INET;
    memcpy(&in->sin_addr, &e.addr[12], 4);
    in->sin_port = htons(e.port);
    return sizeof(sockaddr_in);
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
  in6->sin6_family = AF_INET6;
  memcpy(&in6->sin6_addr, e.addr.data(), 16);
  in6->sin6_port = htons(e.port);
  return sizeof(sockaddr_in6);
}

std::string to_string(const Endpoint& e, uint16_t family) {
  char host[INET6_ADDRSTRLEN] = {};
  if (family == AF_INET) {
    inet_ntop(AF_INET, &e.addr[12], host, sizeof(host));
    return std::string(host) + ":" + std::to_string(e.port);
  }
  inet_ntop(AF_INET6, e.addr.data(), host, sizeof(host));
  return "[" + std::string(host) + "]:" + std::to_string(e.port);
}

FlowTable::FlowTable(uint32_t max_flows, uint64_t idle_ns)
    : max_flows_(max_flows == 0 ? 1 : max_flows), idle_ns_(idle_ns), buckets_(kFirstBuckets, kNone) {}

uint32_t FlowTable::bucket_of(const FlowKey& k) const {
  // The fields one after the other: the struct's padding must not reach the hash.
  uint8_t bytes[16 + 2 + 16 + 2 + 2 + 4];
  uint8_t* p = bytes;
  for (const Endpoint* e : {&k.client, &k.local}) {
    memcpy(p, e->addr.data(), 16);
    memcpy(p + 16, &e->port, 2);
    p += 18;
  }
  memcpy(p, &k.family, 2);
  memcpy(p + 2, &k.backend_key, 4);
  return static_cast<uint32_t>(balancer::hash64(bytes, sizeof(bytes)) & (buckets_.size() - 1));
}

uint32_t FlowTable::find(const FlowKey& key) const {
  for (uint32_t id = buckets_[bucket_of(key)]; id != kNone; id = flows_[id].chain) {
    if (flows_[id].key == key) return id;
  }
  return kNone;
}

uint32_t FlowTable::find_upstream(int32_t slot) const {
  if (slot < 0 || static_cast<size_t>(slot) >= upstream_.size()) return kNone;
  return upstream_[static_cast<size_t>(slot)];
}

bool FlowTable::live(uint32_t id, uint32_t generation) const {
  // A flow's generation is odd from add() to remove().
  return id < flows_.size() && flows_[id].generation == generation && (generation & 1) != 0;
}

void FlowTable::grow_buckets() {
  buckets_.assign(buckets_.size() * 2, kNone);
  for (uint32_t id = head_; id != kNone; id = flows_[id].lru_next) {
    const uint32_t b = bucket_of(flows_[id].key);
    flows_[id].chain = buckets_[b];
    buckets_[b] = id;
  }
}

void FlowTable::unlink_lru(uint32_t id) {
  Flow& f = flows_[id];
  (f.lru_prev != kNone ? flows_[f.lru_prev].lru_next : head_) = f.lru_next;
  (f.lru_next != kNone ? flows_[f.lru_next].lru_prev : tail_) = f.lru_prev;
}

void FlowTable::push_front(uint32_t id) {
  Flow& f = flows_[id];
  f.lru_prev = kNone;
  f.lru_next = head_;
  (head_ != kNone ? flows_[head_].lru_prev : tail_) = id;
  head_ = id;
}

void FlowTable::touch(uint32_t id, uint64_t now_ns) {
  flows_[id].last_ns = head_ != kNone ? std::max(now_ns, flows_[head_].last_ns) : now_ns;
  if (head_ == id) return;
  unlink_lru(id);
  push_front(id);
}

FlowTable::Added FlowTable::add(const FlowKey& key, uint32_t backend, uint64_t now_ns) {
  Added added;
  if (size_ >= max_flows_ && tail_ != kNone) {
    added.evicted = true;
    added.evicted_flow = remove(tail_);
  }
  uint32_t id = free_;
  if (id != kNone) {
    free_ = flows_[id].chain;
  } else {
    if (flows_.size() == flows_.capacity()) {
      // Doubling, but never past max-flows: a full table holds no spare room.
      const size_t room = std::min<size_t>(std::max<size_t>(64, flows_.capacity() * 2), max_flows_);
      flows_.reserve(std::max(room, flows_.size() + 1));
    }
    id = static_cast<uint32_t>(flows_.size());
    flows_.emplace_back();
  }
  Flow& f = flows_[id];
  const uint32_t generation = f.generation + 1;
  f = Flow{};
  f.key = key;
  f.backend = backend;
  f.generation = generation;
  f.created_ns = now_ns;
  // The list stays in last_ns order even if a caller's clock steps back a little.
  f.last_ns = head_ != kNone ? std::max(now_ns, flows_[head_].last_ns) : now_ns;
  ++size_;
  if (size_ > buckets_.size()) grow_buckets();  // load factor at most 1
  const uint32_t b = bucket_of(key);
  f.chain = buckets_[b];
  buckets_[b] = id;
  push_front(id);
  added.id = id;
  return added;
}

void FlowTable::set_upstream(uint32_t id, int32_t slot) {
  Flow& f = flows_[id];
  if (f.upstream >= 0 && static_cast<size_t>(f.upstream) < upstream_.size()) {
    upstream_[static_cast<size_t>(f.upstream)] = kNone;
  }
  f.upstream = slot;
  if (slot < 0) return;
  if (static_cast<size_t>(slot) >= upstream_.size()) upstream_.resize(static_cast<size_t>(slot) + 1, kNone);
  upstream_[static_cast<size_t>(slot)] = id;
}

void FlowTable::client_datagram(uint32_t id, size_t bytes, uint64_t now_ns) {
  Flow& f = flows_[id];
  ++f.datagrams_in;
  f.bytes_in += bytes;
  touch(id, now_ns);
}

uint32_t FlowTable::backend_datagram(uint32_t id, size_t bytes, uint64_t now_ns) {
  Flow& f = flows_[id];
  ++f.datagrams_out;
  f.bytes_out += bytes;
  ++f.replies;
  touch(id, now_ns);
  return f.replies;
}

Flow FlowTable::remove(uint32_t id) {
  Flow& f = flows_[id];
  const Flow gone = f;
  for (uint32_t* at = &buckets_[bucket_of(f.key)]; *at != kNone; at = &flows_[*at].chain) {
    if (*at == id) {
      *at = f.chain;
      break;
    }
  }
  unlink_lru(id);
  if (f.upstream >= 0 && static_cast<size_t>(f.upstream) < upstream_.size() &&
      upstream_[static_cast<size_t>(f.upstream)] == id) {
    upstream_[static_cast<size_t>(f.upstream)] = kNone;
  }
  f.upstream = -1;
  ++f.generation;
  f.chain = free_;
  free_ = id;
  --size_;
  return gone;
}

uint64_t FlowTable::next_deadline() const {
  return tail_ == kNone ? UINT64_MAX : flows_[tail_].last_ns + idle_ns_;
}

size_t FlowTable::memory_bytes() const {
  return flows_.capacity() * sizeof(Flow) + buckets_.capacity() * sizeof(uint32_t) +
         upstream_.capacity() * sizeof(uint32_t);
}

}  // namespace ringlb::udp
