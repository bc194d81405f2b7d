// The QUIC header reader and router key: real client Initials (RFC 9001 and RFC 9369's, made by
// tests/fuzz/make_quic_corpus.py and checked there against the RFCs' bytes), crafted long and short
// headers, every truncation, over-long CIDs, garbage; QUIC-LB server IDs routed whatever the
// client's address, unroutable ones falling back; the server ID map and its config syntax; the
// DCID hash spread over a Maglev table.
#include "server/protocol/quic.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "balancer/maglev.h"

namespace ringlb::quic {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes seed(const std::string& name) {
  std::ifstream in("tests/fuzz/corpus/quic/" + name, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

Bytes hex(const std::string& text) {
  Bytes out;
  for (size_t i = 0; i + 1 < text.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoi(text.substr(i, 2), nullptr, 16)));
  return out;
}

Bytes bytes_of(std::span<const uint8_t> s) { return Bytes(s.begin(), s.end()); }

// A long header: first byte, version, DCID, SCID, then `rest`.
Bytes long_header(uint8_t first, uint32_t version, const Bytes& dcid, const Bytes& scid, size_t rest = 32) {
  Bytes p{first, uint8_t(version >> 24), uint8_t(version >> 16), uint8_t(version >> 8), uint8_t(version)};
  p.push_back(static_cast<uint8_t>(dcid.size()));
  p.insert(p.end(), dcid.begin(), dcid.end());
  p.push_back(static_cast<uint8_t>(scid.size()));
  p.insert(p.end(), scid.begin(), scid.end());
  p.resize(p.size() + rest, 0xab);
  return p;
}

// A short header whose DCID is a QUIC-LB plaintext CID: config rotation, server ID, nonce.
Bytes short_header(uint8_t config, const Bytes& server_id, size_t nonce = 8) {
  Bytes p{0x43, static_cast<uint8_t>(config << 5 | 0x0c)};
  p.insert(p.end(), server_id.begin(), server_id.end());
  for (size_t i = 0; i < nonce; ++i) p.push_back(static_cast<uint8_t>(0x50 + i));
  p.resize(p.size() + 24, 0x77);  // packet number and sealed payload
  return p;
}

TEST(QuicHeader, ReadsTheRfc9001ClientInitial) {
  const Bytes packet = seed("initial_v1_rfc9001");
  ASSERT_EQ(packet.size(), 1200u) << "the corpus is missing from the runfiles";
  Header h;
  ASSERT_EQ(parse_header(packet, 3, &h), ParseError::kNone);
  EXPECT_EQ(h.form, Form::kLong);
  EXPECT_EQ(h.version, kVersion1);
  EXPECT_EQ(h.type, LongType::kInitial);
  EXPECT_EQ(bytes_of(h.dcid), hex("8394c8f03e515708"));
  EXPECT_TRUE(h.scid.empty());
}

TEST(QuicHeader, ReadsTheRfc9369Version2InitialByItsOwnTypeBits) {
  const Bytes packet = seed("initial_v2_rfc9369");
  Header h;
  ASSERT_EQ(parse_header(packet, 3, &h), ParseError::kNone);
  EXPECT_EQ(h.version, kVersion2);
  EXPECT_EQ(h.type, LongType::kInitial) << "version 2's Initial is type 0b01 (0b00 in version 1 is Initial too)";
  EXPECT_EQ(bytes_of(h.dcid), hex("8394c8f03e515708"));
  const Bytes zero_rtt = long_header(0xd0, kVersion1, {1, 2}, {});
  Header v1;
  ASSERT_EQ(parse_header(zero_rtt, 3, &v1), ParseError::kNone);
  EXPECT_EQ(v1.type, LongType::kZeroRtt) << "0b01 is 0-RTT in version 1";
}

TEST(QuicHeader, NamesEachLongTypeOfVersion1) {
  const Bytes dcid{9, 9, 9, 9};
  const std::pair<uint8_t, LongType> cases[] = {{0xc0, LongType::kInitial}, {0xd0, LongType::kZeroRtt},
                                                {0xe0, LongType::kHandshake}, {0xf0, LongType::kRetry}};
  for (const auto& [first, type] : cases) {
    const Bytes packet = long_header(first, kVersion1, dcid, {1});
    Header h;
    ASSERT_EQ(parse_header(packet, 3, &h), ParseError::kNone);
    EXPECT_EQ(h.type, type) << int(first);
    EXPECT_EQ(bytes_of(h.scid), Bytes{1});
  }
  const Bytes retry_packet = seed("retry_v1_rfc9001");  // the spans point into it
  Header retry;
  ASSERT_EQ(parse_header(retry_packet, 3, &retry), ParseError::kNone);
  EXPECT_EQ(retry.type, LongType::kRetry);
  EXPECT_EQ(bytes_of(retry.scid), hex("f067a5502a4262b5"));
  const Bytes future_packet = long_header(0xc0, 0x1a2a3a4a, {1}, {});
  Header future;
  ASSERT_EQ(parse_header(future_packet, 3, &future), ParseError::kNone);
  EXPECT_EQ(future.type, LongType::kOther) << "an unknown version's type bits mean nothing to us";
}

TEST(QuicHeader, EveryTruncationOfALongHeaderIsTruncated) {
  const Bytes packet = long_header(0xc3, kVersion1, Bytes(20, 0x11), Bytes(20, 0x22), 0);
  Header h;
  ASSERT_EQ(parse_header(packet, 3, &h), ParseError::kNone);
  EXPECT_EQ(h.dcid.size(), 20u);
  EXPECT_EQ(h.scid.size(), 20u);
  EXPECT_EQ(parse_header({}, 3, &h), ParseError::kEmpty);
  for (size_t cut = 1; cut < packet.size(); ++cut) {
    EXPECT_EQ(parse_header(std::span(packet).first(cut), 3, &h), ParseError::kTruncated) << cut;
  }
}

TEST(QuicHeader, Version1CidsOver20BytesAreRefusedButAFutureVersionsAreCarried) {
  Header h;
  EXPECT_EQ(parse_header(long_header(0xc0, kVersion1, Bytes(21, 1), {}), 3, &h), ParseError::kCidTooLong);
  EXPECT_EQ(parse_header(long_header(0xc0, kVersion2, {1}, Bytes(21, 1)), 3, &h), ParseError::kCidTooLong);
  EXPECT_EQ(parse_header(seed("cid21_v1_refused"), 3, &h), ParseError::kCidTooLong);
  const Bytes future = seed("future_version_cid255");
  ASSERT_EQ(parse_header(future, 3, &h), ParseError::kNone);
  EXPECT_EQ(h.dcid.size(), 255u);
  EXPECT_EQ(h.scid.size(), 255u);
}

TEST(QuicHeader, AShortHeadersDcidHasTheConfiguredLength) {
  const Bytes packet = short_header(0b001, {0x00, 0x02}, 5);
  Header h;
  ASSERT_EQ(parse_header(packet, 8, &h), ParseError::kNone);
  EXPECT_EQ(h.form, Form::kShort);
  EXPECT_EQ(h.dcid.size(), 8u);
  EXPECT_EQ(h.dcid[1], 0x00);
  EXPECT_EQ(h.dcid[2], 0x02);
  EXPECT_EQ(parse_header(std::span(packet).first(8), 8, &h), ParseError::kTruncated);
  EXPECT_EQ(parse_header(std::span(packet).first(9), 8, &h), ParseError::kNone);
}

TEST(QuicRoute, AShortHeadersServerIdRoutesItWithTheFourTupleAsFallback) {
  const Bytes packet = short_header(0b000, {0xbe, 0xef});
  const RouteKey key = route_key(packet, 2);
  ASSERT_EQ(key.kind, RouteKind::kServerId);
  EXPECT_EQ(key.form, Form::kShort);
  EXPECT_EQ(bytes_of(key.server_id), (Bytes{0xbe, 0xef}));
  EXPECT_EQ(key.fallback, RouteKind::kFourTuple);
  // Every config rotation but 0b111 is routable.
  for (uint8_t config = 0; config < 7; ++config) {
    EXPECT_EQ(route_key(short_header(config, {1, 2}), 2).kind, RouteKind::kServerId) << int(config);
  }
  EXPECT_EQ(bytes_of(route_key(short_header(0b010, {1, 2, 3, 4}), 4).server_id), (Bytes{1, 2, 3, 4}));
}

TEST(QuicRoute, ConfigRotation111IsUnroutable) {
  const RouteKey key = route_key(short_header(0b111, {0xbe, 0xef}), 2);
  EXPECT_EQ(key.kind, RouteKind::kFourTuple);
  EXPECT_TRUE(key.server_id.empty());
  EXPECT_EQ(route_key(seed("short_unroutable"), 2).kind, RouteKind::kFourTuple);
  // In a long header: the DCID's hash instead.
  Bytes dcid(8, 0x33);
  dcid[0] = 0xe0 | 0x05;
  const RouteKey long_key = route_key(long_header(0xe0, kVersion1, dcid, {}), 2);
  EXPECT_EQ(long_key.kind, RouteKind::kHash);
  EXPECT_EQ(long_key.hash, cid_hash(dcid));
}

TEST(QuicRoute, ALongHeaderHashesItsDcidWhateverElseItCarries) {
  const Bytes dcid = hex("8394c8f03e515708");
  const Bytes rfc_packet = seed("initial_v1_rfc9001");
  const RouteKey rfc = route_key(rfc_packet, 2);
  // The RFC's DCID starts 0x83 (config 0b100): it may name a server; if none has it, the hash.
  ASSERT_EQ(rfc.kind, RouteKind::kServerId);
  EXPECT_EQ(bytes_of(rfc.server_id), hex("94c8"));
  EXPECT_EQ(rfc.fallback, RouteKind::kHash);
  EXPECT_EQ(rfc.hash, cid_hash(dcid));
  // The same DCID from another packet (another SCID, version, length, type): the same hash.
  EXPECT_EQ(route_key(seed("initial_v2_rfc9369"), 2).hash, rfc.hash);
  EXPECT_EQ(route_key(long_header(0xd0, kVersion1, dcid, {7, 7, 7}, 100), 2).hash, rfc.hash);
  EXPECT_NE(route_key(long_header(0xc0, kVersion1, hex("8394c8f03e515709"), {}), 2).hash, rfc.hash);
  // A long header with no DCID has nothing to hash: the 4-tuple.
  EXPECT_EQ(route_key(long_header(0xe0, kVersion1, {}, {1}), 2).kind, RouteKind::kFourTuple);
}

TEST(QuicRoute, TheServersCidInAClientsInitialOrHandshakeRoutesToThatServer) {
  const Bytes to_server = seed("initial_v1_to_server_cid");
  const RouteKey key = route_key(to_server, 2);
  ASSERT_EQ(key.kind, RouteKind::kServerId);
  EXPECT_EQ(bytes_of(key.server_id), hex("0002"));
  const Bytes handshake_packet = seed("handshake_v1");
  const RouteKey handshake = route_key(handshake_packet, 2);
  ASSERT_EQ(handshake.kind, RouteKind::kServerId);
  EXPECT_EQ(bytes_of(handshake.server_id), hex("0002"));
  EXPECT_EQ(bytes_of(route_key(seed("short_routable"), 2).server_id), hex("0002"));
}

TEST(QuicRoute, TruncatedAndGarbageDatagramsAreNotQuic) {
  EXPECT_EQ(route_key({}, 2).kind, RouteKind::kNotQuic);
  EXPECT_EQ(route_key({}, 2).error, ParseError::kEmpty);
  const Bytes tiny{0x40, 0x01};  // a short header too short for the server ID
  EXPECT_EQ(route_key(tiny, 2).kind, RouteKind::kNotQuic);
  EXPECT_EQ(route_key(tiny, 2).error, ParseError::kTruncated);
  const Bytes cut = seed("initial_v1_rfc9001");
  EXPECT_EQ(route_key(std::span(cut).first(10), 2).kind, RouteKind::kNotQuic);
  EXPECT_EQ(route_key(seed("cid21_v1_refused"), 2).error, ParseError::kCidTooLong);
  // Random bytes never crash the reader, and whatever they are called, they lead somewhere.
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    Bytes junk(rng() % 64);
    for (uint8_t& b : junk) b = static_cast<uint8_t>(rng());
    const RouteKey k = route_key(junk, 1 + rng() % kMaxServerIdLength);
    EXPECT_TRUE(k.kind != RouteKind::kServerId || k.fallback != RouteKind::kServerId);
  }
}

TEST(QuicRoute, AMigratingClientKeepsItsBackend) {
  // The backends' IDs, as the config gives them; the same short-header packet, sent from two
  // addresses, carries no address: it routes to the same backend both times.
  ServerIdMap map;
  ASSERT_TRUE(map.add(hex("0001"), 0).ok());
  ASSERT_TRUE(map.add(hex("0002"), 1).ok());
  ASSERT_TRUE(map.add(hex("0003"), 2).ok());
  for (const Bytes& id : {hex("0001"), hex("0002"), hex("0003")}) {
    const Bytes from_home = short_header(0b000, id), after_nat_rebinding = short_header(0b000, id, 8);
    EXPECT_EQ(map.find(route_key(from_home, 2).server_id), map.find(route_key(after_nat_rebinding, 2).server_id));
  }
  EXPECT_EQ(map.find(route_key(short_header(0b000, hex("0002")), 2).server_id), 1u);
  EXPECT_EQ(map.find(route_key(short_header(0b000, hex("0009")), 2).server_id), ServerIdMap::kNone)
      << "an ID no backend has: the fallback decides";
}

TEST(QuicServerIdMap, OneBackendPerIdAndLengthsApart) {
  ServerIdMap map;
  ASSERT_TRUE(map.add(hex("01"), 10).ok());
  ASSERT_TRUE(map.add(hex("0001"), 11).ok());
  ASSERT_TRUE(map.add(hex("000102030405060708090a0b0c0d0e"), 12).ok());
  EXPECT_EQ(map.size(), 3u);
  EXPECT_EQ(map.find(hex("01")), 10u);
  EXPECT_EQ(map.find(hex("0001")), 11u) << "00 01 is not 01";
  EXPECT_EQ(map.find(hex("000102030405060708090a0b0c0d0e")), 12u);
  EXPECT_EQ(map.find(hex("02")), ServerIdMap::kNone);
  EXPECT_EQ(map.find({}), ServerIdMap::kNone);
  const Status again = map.add(hex("0001"), 13);
  EXPECT_FALSE(again.ok());
  EXPECT_EQ(again.message(), "server ID 0x0001 is already backend 11's");
  EXPECT_FALSE(map.add(hex("000102030405060708090a0b0c0d0e0f"), 14).ok()) << "16 bytes";
  EXPECT_FALSE(map.add({}, 15).ok());
}

TEST(QuicServerId, ConfigSyntax) {
  std::string out;
  ASSERT_TRUE(parse_server_id("0x0001", &out).ok());
  EXPECT_EQ(out, std::string("\x00\x01", 2));
  ASSERT_TRUE(parse_server_id("0XaBcD", &out).ok());
  EXPECT_EQ(format_server_id(out), "0xabcd");
  ASSERT_TRUE(parse_server_id("0x" + std::string(30, 'f'), &out).ok());
  EXPECT_EQ(out.size(), 15u);
  for (const char* bad : {"", "1", "0x", "0x1", "0x123", "0xzz", "00x1", "x0001", "0x0001 "}) {
    const Status s = parse_server_id(bad, &out);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.message().find("such as \"0x0001\""), std::string::npos) << s.message();
  }
  EXPECT_FALSE(parse_server_id("0x" + std::string(32, 'f'), &out).ok()) << "16 bytes";
}

TEST(QuicRoute, DcidHashesSpreadEvenlyOverAMaglevTable) {
  const std::vector<int32_t> table = balancer::build_maglev({{"a", 1}, {"b", 1}, {"c", 1}}, 65537);
  ASSERT_EQ(table.size(), 65537u);
  std::mt19937_64 rng(1);
  int counts[3] = {};
  for (int i = 0; i < 30000; ++i) {
    Bytes dcid(8);
    for (uint8_t& b : dcid) b = static_cast<uint8_t>(rng());
    dcid[0] |= 0xe0;  // unroutable: the hash decides
    const RouteKey key = route_key(long_header(0xc3, kVersion1, dcid, {}), 2);
    ASSERT_EQ(key.kind, RouteKind::kHash);
    ++counts[table[key.hash % table.size()]];
  }
  for (int c : counts) EXPECT_NEAR(c, 10000, 600);
}

}  // namespace
}  // namespace ringlb::quic
