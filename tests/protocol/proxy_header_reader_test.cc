// The PROXY header reader consumes exactly the header, whatever pieces it arrives in, and never
// a byte of the client's data behind it.
#include "server/protocol/proxy_header_reader.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <gtest/gtest.h>

#include <string>

namespace ringlb {
namespace {

using Next = ProxyHeaderReader::Next;

// Plays the socket: `arrived` bytes are in it; a peek sees them all, a consume takes the front.
struct Socket {
  std::string pending;
  size_t consumed = 0;
  ProxyHeaderReader::Step peek(ProxyHeaderReader& r, ParsedProxyHeader* out) {
    const std::string seen = pending.substr(0, r.peek_limit());
    ProxyHeaderReader::Step s = r.on_peek(seen.data(), seen.size(), out);
    if (s.next != Next::kInvalid) {
      pending.erase(0, s.consume);
      consumed += s.consume;
    }
    return s;
  }
};

const std::string kV1 = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";

TEST(ProxyHeaderReader, WholeHeaderWithDataBehindItConsumesOnlyTheHeader) {
  ProxyHeaderReader r;
  Socket s{kV1 + "GET / HTTP/1.1\r\n"};
  ParsedProxyHeader out;
  const auto step = s.peek(r, &out);
  ASSERT_EQ(step.next, Next::kComplete);
  EXPECT_EQ(step.consume, kV1.size());
  EXPECT_EQ(s.pending, "GET / HTTP/1.1\r\n") << "the client's data stays in the socket";
  ASSERT_TRUE(out.has_addresses);
  const auto& src = reinterpret_cast<const sockaddr_in&>(out.src);
  EXPECT_EQ(ntohs(src.sin_port), 56324);
}

TEST(ProxyHeaderReader, HeaderInPiecesIsJoinedAndStillConsumedExactly) {
  for (size_t piece = 1; piece <= kV1.size(); ++piece) {
    ProxyHeaderReader r;
    Socket s;
    const std::string all = kV1 + "DATA";
    size_t fed = 0;
    ParsedProxyHeader out;
    Next next = Next::kMore;
    int steps = 0;
    while (next == Next::kMore) {
      const size_t n = std::min(piece, all.size() - fed);
      s.pending += all.substr(fed, n);
      fed += n;
      next = s.peek(r, &out).next;
      ASSERT_LT(++steps, 1000);
    }
    ASSERT_EQ(next, Next::kComplete) << "piece " << piece;
    EXPECT_EQ(s.consumed, kV1.size()) << "piece " << piece;
    EXPECT_EQ(s.pending + all.substr(fed), "DATA") << "piece " << piece;
    EXPECT_EQ(r.consumed(), 0u);
  }
}

TEST(ProxyHeaderReader, V2InPieces) {
  // v2 PROXY TCP over IPv4: signature, ver/cmd 0x21, fam 0x11, len 12, addresses and ports.
  std::string v2("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A\x21\x11\x00\x0C", 16);
  v2 += std::string("\xC0\x00\x02\x01\xC6\x33\x64\x02\xDC\x04\x01\xBB", 12);
  ProxyHeaderReader r;
  Socket s{v2.substr(0, 10)};
  ParsedProxyHeader out;
  ASSERT_EQ(s.peek(r, &out).next, Next::kMore);
  s.pending += v2.substr(10) + "xyz";
  ASSERT_EQ(s.peek(r, &out).next, Next::kComplete);
  EXPECT_EQ(s.consumed, v2.size());
  EXPECT_EQ(s.pending, "xyz");
}

TEST(ProxyHeaderReader, GarbageIsInvalidAtOnce) {
  ProxyHeaderReader r;
  Socket s{"GET / HTTP/1.1\r\n\r\n"};
  ParsedProxyHeader out;
  EXPECT_EQ(s.peek(r, &out).next, Next::kInvalid);
  EXPECT_EQ(s.consumed, 0u);
}

TEST(ProxyHeaderReader, GarbageAfterAGoodStartIsInvalid) {
  ProxyHeaderReader r;
  Socket s{"PROXY TC"};
  ParsedProxyHeader out;
  ASSERT_EQ(s.peek(r, &out).next, Next::kMore);
  s.pending = "X5 nonsense\r\n";
  EXPECT_EQ(s.peek(r, &out).next, Next::kInvalid);
}

TEST(ProxyHeaderReader, AV2HeaderThatNeverEndsIsCutAtTheLimit) {
  // A v2 header announcing the largest length accepted, sent a byte short, then more bytes: the
  // reader never consumes past kMaxAcceptedProxyHeader.
  std::string v2("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A\x21\x11\xFF\xFF", 16);
  ProxyHeaderReader r;
  Socket s{v2};
  ParsedProxyHeader out;
  EXPECT_EQ(s.peek(r, &out).next, Next::kInvalid);
}

TEST(ProxyHeaderReader, PeekLimitShrinksAsPiecesArrive) {
  ProxyHeaderReader r;
  Socket s{"PROXY "};
  ParsedProxyHeader out;
  ASSERT_EQ(s.peek(r, &out).next, Next::kMore);
  EXPECT_EQ(r.peek_limit(), kMaxAcceptedProxyHeader - 6);
  EXPECT_EQ(r.consumed(), 6u);
}

}  // namespace
}  // namespace ringlb
