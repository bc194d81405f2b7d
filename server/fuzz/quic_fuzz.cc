// libFuzzer entry point: the QUIC header reader and the router's key (server/protocol/quic.h),
// under every server ID length. What they return points inside the datagram; a long header that
// parses gives kTruncated for every shorter prefix of its header; a version 1 or 2 CID is never
// over 20 bytes; a server ID is the configured length, found in a map once added, and survives a
// round trip through its config text.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "server/protocol/quic.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "quic_fuzz: invariant broken: %s\n", what);
    abort();
  }
}

bool inside(std::span<const uint8_t> part, std::span<const uint8_t> whole) {
  return part.empty() || (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringlb::quic;
  const std::span<const uint8_t> packet(data, size);
  for (size_t length = 1; length <= kMaxServerIdLength; ++length) {
    Header h;
    const ParseError e = parse_header(packet, 1 + length, &h);
    if (e == ParseError::kNone) {
      check(inside(h.dcid, packet) && inside(h.scid, packet), "the CIDs lie within the datagram");
      const bool capped = h.form == Form::kLong && (h.version == kVersion1 || h.version == kVersion2);
      check(!capped || (h.dcid.size() <= kMaxCidLength && h.scid.size() <= kMaxCidLength),
            "version 1 and 2 CIDs are at most 20 bytes");
      check(h.form == Form::kLong || h.dcid.size() == 1 + length, "a short header's DCID has the configured length");
      if (h.form == Form::kLong) {
        const size_t header_end = 7 + h.dcid.size() + h.scid.size();
        for (size_t cut = 1; cut < header_end; ++cut) {
          Header part;
          check(parse_header(packet.first(cut), 1 + length, &part) == ParseError::kTruncated,
                "every prefix of a long header is truncated");
        }
      }
    }
    const RouteKey key = route_key(packet, length);
    check((key.kind == RouteKind::kNotQuic) == (e != ParseError::kNone), "not QUIC exactly when the header fails");
    if (key.kind == RouteKind::kServerId) {
      check(key.server_id.size() == length && inside(key.server_id, packet), "a server ID of the configured length");
      check((h.dcid[0] >> 5) != kUnroutableConfig, "config rotation 0b111 is never routed by server ID");
      check(key.fallback == RouteKind::kHash || key.fallback == RouteKind::kFourTuple, "a fallback that can route");
      ServerIdMap map;
      check(map.add(key.server_id, 7).ok() && map.find(key.server_id) == 7, "an added ID is found");
      check(!map.add(key.server_id, 8).ok(), "an ID is one backend's");
      const std::string bytes(reinterpret_cast<const char*>(key.server_id.data()), key.server_id.size());
      std::string back;
      check(parse_server_id(format_server_id(bytes), &back).ok() && back == bytes, "a server ID's text round-trips");
    }
    if (key.kind == RouteKind::kHash || (key.kind == RouteKind::kServerId && key.fallback == RouteKind::kHash)) {
      check(h.form == Form::kLong && !h.dcid.empty() && key.hash == cid_hash(h.dcid), "the hash is the DCID's");
    }
  }
  return 0;
}
