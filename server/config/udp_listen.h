// The settings of a UDP listener ([[listener]] with protocol = "udp"), part of ListenConfig
// (config.h). Checked against the rest of the file by udp_config.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace ringlb {

enum class ListenProtocol : uint8_t { kTcp, kUdp };

// protocol = "tcp" or "udp".
inline bool parse_listen_protocol(std::string_view text, ListenProtocol* out) {
  if (text != "tcp" && text != "udp") return false;
  *out = text == "udp" ? ListenProtocol::kUdp : ListenProtocol::kTcp;
  return true;
}

struct UdpListenConfig {
  // responses: a flow ends once its backend has sent this many datagrams (nginx's
  // proxy_responses; 0: when its first datagram is sent). Unset: by idle-timeout only.
  std::optional<uint32_t> responses;
  // max-flows: flows at once (all workers together); beyond it the least recently active ends.
  uint32_t max_flows = 100000;
  // per-datagram: each datagram picks a backend by the cluster's policy (Envoy's
  // use_per_packet_load_balancing), not only a flow's first.
  bool per_datagram = false;
  // quic: QUIC datagrams route by connection ID (server/protocol/quic.h), so a client that moves
  // keeps its backend; quic-server-id-length is the QUIC-LB server ID's length in bytes.
  bool quic = false;
  uint32_t quic_server_id_length = 2;
};

namespace limits {
inline constexpr uint32_t kMaxFlows = 10'000'000;       // max-flows (130 bytes each: udp/flow_table.h)
inline constexpr uint32_t kMaxResponses = 1'000'000;    // responses
inline constexpr uint32_t kMaxQuicServerIdLength = 15;  // the QUIC-LB draft's bound
}  // namespace limits

// A UDP listener's idle-timeout when it sets none: a flow has no end but silence (UDP has no
// FIN), so the TCP default of 5 minutes would keep dead flows far too long.
inline constexpr std::chrono::milliseconds kUdpIdleTimeout{30000};

}  // namespace ringlb
