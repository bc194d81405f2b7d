// The PROXY header phase of an accept-proxy listener: reads the header without taking any byte
// behind it (protocol/proxy_header_reader.h), then takes the client it names as the session's
// client. That client is held to the listener's ACL, and, when a trusted proxy named it, counted
// in the per-source limits too.
#pragma once

#include <array>
#include <cstdint>
#include <unordered_map>

#include "server/protocol/proxy_header_reader.h"
#include "server/proxy/env.h"
#include "server/proxy/io.h"
#include "server/proxy/session.h"
#include "server/proxy/snapshot_cache.h"

namespace ringlb::proxy {

class InspectProxy {
 public:
  InspectProxy(Env& env, Io& io, SnapshotCache& snapshots, Extras& extras)
      : env_(env), io_(io), snapshots_(snapshots), extras_(extras) {}
  InspectProxy(const InspectProxy&) = delete;
  InspectProxy& operator=(const InspectProxy&) = delete;

  Step start(Session& s);
  Step on_completion(Session& s, const Completion& c);  // kProxyHeaderPeek, kProxyHeaderConsume
  Step on_buffer(Session& s);  // the peek waited for a buffer
  // The session ended: a header still in pieces goes with it.
  void forget(uint32_t id) {
    if (!reads_.empty()) reads_.erase(id);
  }

 private:
  struct HeaderRead {
    ProxyHeaderReader reader;
    uint32_t consuming = 0;  // bytes the consume recv in flight takes
    bool complete = false;   // the header ends with those bytes
  };

  void peek(Session& s);
  Step on_peek(Session& s, const Completion& c);
  Step on_consumed(Session& s, int res);
  // The header named `src`: the session's client from now on.
  Step take_client(Session& s);

  Env& env_;
  Io& io_;
  SnapshotCache& snapshots_;
  Extras& extras_;
  std::unordered_map<uint32_t, HeaderRead> reads_;  // sessions reading a PROXY header
  // Header bytes are consumed into this and dropped: its content is never read, so every
  // session's consume may share it.
  std::array<char, kMaxAcceptedProxyHeader> sink_{};
};

}  // namespace ringlb::proxy
