// QUIC for a load balancer that does not terminate it: the header fields every QUIC version keeps
// in the clear (RFC 8999's invariants), and what they say about where a datagram goes.
//
// Routing (quic = true on a UDP listener, server/config/udp_listen.h):
// - A connection ID that carries a server ID routes to that backend. The encoding is the IETF
//   QUIC-LB draft's plaintext algorithm: octet 0 of the CID holds 3 config-rotation bits (its top
//   bits; 0b111 = unroutable) and 5 bits the balancer ignores; octets 1..L are the server ID, L the
//   listener's quic-server-id-length. Each backend's ID is written in the config
//   (quic-server-id = "0x0001", L bytes in hex) and the backend must put that same ID in every CID
//   it issues (its QUIC-LB configuration). So a client that moves (NAT rebinding, migration) keeps
//   its backend: nothing of the route depends on the client's address.
// - Otherwise a long-header packet (Initial, 0-RTT, Handshake) picks a backend by Maglev on a hash
//   of its destination CID: a client's Initials, retransmitted from wherever, all land on the same
//   backend; once that backend answers, the client uses its CIDs, which carry its server ID.
// - Otherwise (a short header with an unroutable CID, or a server ID no backend has) the flow of
//   the 4-tuple decides, as for any UDP datagram.
// Katran routes the same way. Pure: no sockets, no I/O; route_key allocates nothing.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "server/base/error.h"

namespace ringlb::quic {

inline constexpr uint32_t kVersionNegotiation = 0;
inline constexpr uint32_t kVersion1 = 0x00000001;  // RFC 9000
inline constexpr uint32_t kVersion2 = 0x6b3343cf;  // RFC 9369
// A connection ID is at most 20 bytes in versions 1 and 2; the invariants allow 255 for versions
// to come, which a balancer must still carry.
inline constexpr size_t kMaxCidLength = 20;
// The QUIC-LB server ID: 1 to 15 bytes (octet 0 of a 20-byte CID is the config rotation, and
// some nonce must follow).
inline constexpr size_t kMaxServerIdLength = 15;
// Config rotation bits that mark a CID as unroutable (the server has no QUIC-LB config).
inline constexpr uint8_t kUnroutableConfig = 0b111;

enum class Form : uint8_t { kLong, kShort };
// Long-header packet types of versions 1 and 2 (their type bits differ: RFC 9369 section 3.2).
enum class LongType : uint8_t { kInitial, kZeroRtt, kHandshake, kRetry, kOther };

struct Header {
  Form form = Form::kShort;
  uint32_t version = 0;         // long headers
  LongType type = LongType::kOther;  // long headers of versions 1 and 2
  std::span<const uint8_t> dcid;
  std::span<const uint8_t> scid;  // long headers
};

enum class ParseError : uint8_t {
  kNone,
  kEmpty,        // a zero-length datagram
  kTruncated,    // shorter than its own lengths say
  kCidTooLong,   // a CID over 20 bytes in version 1 or 2
};
const char* parse_error_name(ParseError e);

// Reads the invariant header at the start of `packet` (one UDP datagram). A short header's DCID
// has no length on the wire: `short_dcid_length` is the length the backends' CIDs have (as the
// balancer is configured; 0 to 20). The spans point into `packet`.
ParseError parse_header(std::span<const uint8_t> packet, size_t short_dcid_length, Header* out);

// How a datagram is routed (see the top of this file).
enum class RouteKind : uint8_t {
  kServerId,   // `server_id` names the backend (if one has it; else `fallback` applies)
  kHash,       // Maglev on `hash`
  kFourTuple,  // the client's flow, as for any UDP datagram
  kNotQuic,    // not a QUIC packet (garbage, or truncated): the client's flow, and counted
};
const char* route_kind_name(RouteKind k);

struct RouteKey {
  RouteKind kind = RouteKind::kNotQuic;
  // kServerId only: what to do when no backend has this ID (kHash or kFourTuple).
  RouteKind fallback = RouteKind::kFourTuple;
  std::span<const uint8_t> server_id;  // kServerId: `server_id_length` bytes of the DCID
  uint64_t hash = 0;                   // kHash, or kServerId falling back to kHash
  Form form = Form::kShort;
  ParseError error = ParseError::kNone;  // kNotQuic: why
};

// What a UDP listener with quic = true routes `packet` by. `server_id_length` is the listener's
// quic-server-id-length (1 to kMaxServerIdLength).
RouteKey route_key(std::span<const uint8_t> packet, size_t server_id_length);

// The hash a long header's DCID picks its Maglev entry by (stable across processes and runs).
uint64_t cid_hash(std::span<const uint8_t> cid);

// Backends by server ID, built from the config when a cluster's snapshot is made; looked up on
// the data path (no allocation: a sorted array and a binary search).
class ServerIdMap {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;
  // `backend` is the caller's (an index into a snapshot's backends). An error names a second
  // backend with the same ID, or an ID of 0 or more than kMaxServerIdLength bytes.
  Status add(std::span<const uint8_t> id, uint32_t backend);
  // The backend with this ID, or kNone.
  uint32_t find(std::span<const uint8_t> id) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::array<uint8_t, kMaxServerIdLength + 1> key{};  // [0] = length, then the bytes
    uint32_t backend = 0;
  };
  static std::array<uint8_t, kMaxServerIdLength + 1> key_of(std::span<const uint8_t> id);
  std::vector<Entry> entries_;  // sorted by key
};

// A server ID as the config writes it: "0x" and 2 to 30 hex digits, two per byte ("0x0001" is the
// two bytes 00 01). The bytes go to *out.
Status parse_server_id(std::string_view text, std::string* out);
// The bytes back as "0x...", for messages and `ringlb ctl`.
std::string format_server_id(std::string_view bytes);

}  // namespace ringlb::quic
