// The TLS of one session, on the sides that speak it: the client's (a terminating listener) and
// the backend's (an originating cluster). Each side has its stream (server/tls/stream.h, no I/O
// of its own) and the ciphertext being sent to its socket: taken out of the stream into `tx`,
// which stays put until that send completes, whatever the stream does meanwhile.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "metrics/tls_stats.h"
#include "server/tls/client_context.h"
#include "server/tls/stream.h"

namespace ringlb::proxy {

// The most ciphertext one send carries, and the most a stream holds before it stops taking
// plaintext: a slow reader costs at most this per side, besides OpenSSL's own record buffers.
inline constexpr size_t kTlsChunk = 64 * 1024;
// The most plaintext one TLS record holds, plus its overhead: a TLS source's recv leaves this
// much room, so that what a record left over from the last recv decrypts into still fits.
inline constexpr uint32_t kTlsRecordRoom = 16 * 1024 + 512;

struct TlsSide {
  std::unique_ptr<tls::Stream> stream;
  std::vector<uint8_t> tx;  // ciphertext in flight to this side's socket
  uint32_t tx_len = 0;
  uint32_t tx_off = 0;
  // A recv buffer whose tail the stream has not read yet (data right behind the handshake's
  // last message): the pump reads it first. -1: none.
  int32_t held = -1;
  bool shut = false;  // close_notify written towards this side

  bool sending() const { return tx_len != 0; }
  // Takes what the stream has to send (at most kTlsChunk) into tx; its length, 0 when nothing.
  uint32_t take_output();
  // The send of tx[tx_off, tx_len) took `n` more: true when all of it is out (tx is free again).
  bool sent(uint32_t n);
};

struct TlsLink {
  TlsSide client;
  TlsSide backend;
  // The cluster's origination context in this worker (null: plain TCP to the backends).
  std::shared_ptr<tls::ClientContext> origin;
  metrics::TlsListenerCounters* listener_counters = nullptr;  // terminating listeners
  metrics::TlsClusterCounters* cluster_counters = nullptr;    // originating clusters
  uint64_t handshake_start_ns = 0;
  std::string client_cn;  // for the access log, kept once the handshake is done
  // A send-proxy v2 header with the client's TLS identity (TLVs), longer than the plain ones.
  std::string proxy_header;
  size_t proxy_header_off = 0;
};

}  // namespace ringlb::proxy
