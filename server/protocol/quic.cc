#include "server/protocol/quic.h"

#include <algorithm>

#include "balancer/hash.h"

namespace ringlb::quic {
namespace {

uint32_t read_be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

// The long-header type bits (0x30 of the first byte) as each known version numbers them.
LongType long_type(uint32_t version, uint8_t first) {
  const uint8_t bits = (first >> 4) & 3;
  if (version == kVersion1) {
    static constexpr LongType kV1[] = {LongType::kInitial, LongType::kZeroRtt, LongType::kHandshake, LongType::kRetry};
    return kV1[bits];
  }
  if (version == kVersion2) {
    static constexpr LongType kV2[] = {LongType::kRetry, LongType::kInitial, LongType::kZeroRtt, LongType::kHandshake};
    return kV2[bits];
  }
  return LongType::kOther;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Seeds the DCID hash apart from the other hashes of balancer/hash.h's users.
constexpr uint64_t kCidSeed = 0x717569632d636964ULL;  // "quic-cid"

}  // namespace

const char* parse_error_name(ParseError e) {
  switch (e) {
    case ParseError::kNone: return "none";
    case ParseError::kEmpty: return "empty";
    case ParseError::kTruncated: return "truncated";
    case ParseError::kCidTooLong: return "cid_too_long";
  }
  return "?";
}

const char* route_kind_name(RouteKind k) {
  switch (k) {
    case RouteKind::kServerId: return "server_id";
    case RouteKind::kHash: return "hash";
    case RouteKind::kFourTuple: return "four_tuple";
    case RouteKind::kNotQuic: return "not_quic";
  }
  return "?";
}

ParseError parse_header(std::span<const uint8_t> p, size_t short_dcid_length, Header* out) {
  if (p.empty()) return ParseError::kEmpty;
  Header h;
  if ((p[0] & 0x80) == 0) {
    // Short header: the first byte, then the DCID, whose length only the endpoints know.
    if (p.size() < 1 + short_dcid_length) return ParseError::kTruncated;
    h.form = Form::kShort;
    h.dcid = p.subspan(1, short_dcid_length);
    *out = h;
    return ParseError::kNone;
  }
  // Long header: first byte, version (4), DCID length (1), DCID, SCID length (1), SCID.
  if (p.size() < 6) return ParseError::kTruncated;
  h.form = Form::kLong;
  h.version = read_be32(&p[1]);
  h.type = long_type(h.version, p[0]);
  // Versions 1 and 2 cap CIDs at 20 bytes (a longer one is an error, RFC 9000 section 17.2);
  // the invariants let later versions use up to 255.
  const bool capped = h.version == kVersion1 || h.version == kVersion2;
  const size_t dcid_length = p[5];
  if (capped && dcid_length > kMaxCidLength) return ParseError::kCidTooLong;
  if (p.size() < 6 + dcid_length + 1) return ParseError::kTruncated;
  h.dcid = p.subspan(6, dcid_length);
  const size_t scid_length = p[6 + dcid_length];
  if (capped && scid_length > kMaxCidLength) return ParseError::kCidTooLong;
  if (p.size() < 7 + dcid_length + scid_length) return ParseError::kTruncated;
  h.scid = p.subspan(7 + dcid_length, scid_length);
  *out = h;
  return ParseError::kNone;
}

uint64_t cid_hash(std::span<const uint8_t> cid) { return balancer::hash64(cid.data(), cid.size(), kCidSeed); }

RouteKey route_key(std::span<const uint8_t> packet, size_t server_id_length) {
  RouteKey key;
  Header h;
  // A short header is read as far as routing needs: the config-rotation octet and the server ID.
  key.error = parse_header(packet, 1 + server_id_length, &h);
  if (key.error != ParseError::kNone) return key;
  key.form = h.form;
  // A long header without a DCID (a server that uses none relies on the addresses) hashes nothing.
  RouteKind fallback = RouteKind::kFourTuple;
  if (h.form == Form::kLong && !h.dcid.empty()) {
    fallback = RouteKind::kHash;
    key.hash = cid_hash(h.dcid);
  }
  const bool routable = h.dcid.size() >= 1 + server_id_length && (h.dcid[0] >> 5) != kUnroutableConfig;
  if (routable) {
    key.kind = RouteKind::kServerId;
    key.fallback = fallback;
    key.server_id = h.dcid.subspan(1, server_id_length);
  } else {
    key.kind = fallback;
  }
  return key;
}

std::array<uint8_t, kMaxServerIdLength + 1> ServerIdMap::key_of(std::span<const uint8_t> id) {
  std::array<uint8_t, kMaxServerIdLength + 1> key{};
  key[0] = static_cast<uint8_t>(id.size());
  std::copy(id.begin(), id.end(), key.begin() + 1);
  return key;
}

Status ServerIdMap::add(std::span<const uint8_t> id, uint32_t backend) {
  const std::string_view bytes(reinterpret_cast<const char*>(id.data()), id.size());
  if (id.empty() || id.size() > kMaxServerIdLength) {
    return Status::error("a server ID is 1 to " + std::to_string(kMaxServerIdLength) + " bytes (" +
                         format_server_id(bytes) + " has " + std::to_string(id.size()) + ")");
  }
  Entry entry;
  entry.key = key_of(id);
  entry.backend = backend;
  auto at = std::lower_bound(entries_.begin(), entries_.end(), entry,
                             [](const Entry& a, const Entry& b) { return a.key < b.key; });
  if (at != entries_.end() && at->key == entry.key) {
    return Status::error("server ID " + format_server_id(bytes) + " is already backend " + std::to_string(at->backend) + "'s");
  }
  entries_.insert(at, entry);
  return {};
}

uint32_t ServerIdMap::find(std::span<const uint8_t> id) const {
  if (id.empty() || id.size() > kMaxServerIdLength) return kNone;
  const auto key = key_of(id);
  auto at = std::lower_bound(entries_.begin(), entries_.end(), key,
                             [](const Entry& a, const std::array<uint8_t, kMaxServerIdLength + 1>& k) { return a.key < k; });
  return at != entries_.end() && at->key == key ? at->backend : kNone;
}

Status parse_server_id(std::string_view text, std::string* out) {
  const auto bad = [&] {
    return Status::error("expected \"0x\" and 2 to " + std::to_string(2 * kMaxServerIdLength) +
                         " hex digits, two per byte, such as \"0x0001\" (got \"" + std::string(text) + "\")");
  };
  if (text.size() < 4 || text[0] != '0' || (text[1] != 'x' && text[1] != 'X')) return bad();
  const std::string_view digits = text.substr(2);
  if (digits.size() % 2 != 0 || digits.size() > 2 * kMaxServerIdLength) return bad();
  std::string bytes;
  for (size_t i = 0; i < digits.size(); i += 2) {
    const int hi = hex_digit(digits[i]), lo = hex_digit(digits[i + 1]);
    if (hi < 0 || lo < 0) return bad();
    bytes += static_cast<char>(hi * 16 + lo);
  }
  *out = std::move(bytes);
  return {};
}

std::string format_server_id(std::string_view bytes) {
  static const char kHex[] = "0123456789abcdef";
  std::string s = "0x";
  for (const char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    s += kHex[u >> 4];
    s += kHex[u & 15];
  }
  return s;
}

}  // namespace ringlb::quic
