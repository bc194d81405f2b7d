// libFuzzer entry point: the PROXY protocol v1/v2 parser and the reader that peeks and consumes
// only the header. A header it accepts, written back out by ringlb's own writer, parses to the
// same addresses (and TLS TLVs); every prefix of an accepted header is incomplete, never invalid; and the
// reader fed the bytes in pieces reaches the verdict the whole input gets.
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "server/protocol/proxy_header_reader.h"
#include "server/protocol/proxy_protocol.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "proxy_protocol_fuzz: invariant broken: %s\n", what);
    abort();
  }
}

socklen_t length_of(const sockaddr_storage& s) {
  return s.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringlb;
  const char* bytes = reinterpret_cast<const char*>(data);
  ParsedProxyHeader whole;
  ProxyTlvs tlvs;
  const ParseResult r = parse_proxy_header(bytes, size, &whole, &tlvs);
  if (r == ParseResult::kComplete) {
    check(whole.length > 0 && whole.length <= size && whole.length <= kMaxAcceptedProxyHeader,
          "a complete header lies within the input and the limit");
    if (whole.has_addresses && whole.src.ss_family == whole.dst.ss_family) {
      char out[kMaxProxyHeader];
      const size_t n = write_proxy_header(ProxyProtocol::kV2, reinterpret_cast<const sockaddr*>(&whole.src),
                                          reinterpret_cast<const sockaddr*>(&whole.dst), out);
      ParsedProxyHeader again;
      check(n > 0 && parse_proxy_header(out, n, &again) == ParseResult::kComplete && again.length == n,
            "ringlb's own header parses");
      check(memcmp(&again.src, &whole.src, length_of(whole.src)) == 0, "the source survives a round trip");
      // Its TLS TLVs too, written by ringlb's TLV writer (never more than what was read, so
      // they fit the limit the header did).
      std::string with_tlvs(kMaxAcceptedProxyHeader, '\0');
      const size_t m = write_proxy_v2(reinterpret_cast<const sockaddr*>(&whole.src),
                                      reinterpret_cast<const sockaddr*>(&whole.dst), tlvs, with_tlvs.data(),
                                      with_tlvs.size());
      ProxyTlvs tlvs_again;
      check(m > 0, "the TLVs read are written back within the accepted size");
      check(parse_proxy_header(with_tlvs.data(), m, &again, &tlvs_again) == ParseResult::kComplete &&
                tlvs_again == tlvs,
            "the TLS TLVs survive a round trip");
    }
  }
  for (size_t cut = 0; r == ParseResult::kComplete && cut < whole.length; cut += 1 + cut / 16) {
    ParsedProxyHeader part;
    check(parse_proxy_header(bytes, cut, &part) == ParseResult::kIncomplete,
          "a prefix of a complete header is incomplete");
  }
  // The reader, fed what a socket would show: the bytes not yet consumed, growing by a few at a
  // time (the first input byte picks the step).
  ProxyHeaderReader reader;
  const size_t step = size > 0 ? 1 + data[0] % 7 : 1;
  size_t consumed = 0, shown = 0;
  ParsedProxyHeader got;
  for (int rounds = 0; rounds < 10000; ++rounds) {
    const size_t before = shown;
    shown = std::min(size, std::max(shown, consumed) + step);
    if (shown <= consumed || (shown == before && shown == size)) break;  // nothing more arrives
    const ProxyHeaderReader::Step s = reader.on_peek(bytes + consumed, shown - consumed, &got);
    if (s.next == ProxyHeaderReader::Next::kInvalid) {
      check(r != ParseResult::kComplete, "the reader refuses no header the parser accepts");
      break;
    }
    check(s.consume <= shown - consumed, "the reader consumes only what it saw");
    consumed += s.consume;
    if (s.next == ProxyHeaderReader::Next::kComplete) {
      check(r == ParseResult::kComplete && consumed == whole.length, "the reader ends where the header ends");
      break;
    }
  }
  return 0;
}
