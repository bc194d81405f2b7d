#include "server/protocol/proxy_header_reader.h"

namespace ringlb {

ProxyHeaderReader::Step ProxyHeaderReader::on_peek(const char* peeked, size_t len,
                                                    ParsedProxyHeader* out, ProxyTlvs* tlvs) {
  ParseResult result;
  const size_t before = partial_.size();
  if (before == 0) {
    result = parse_proxy_header(peeked, len, out, tlvs);
  } else {
    std::string joined = partial_;
    joined.append(peeked, len);
    result = parse_proxy_header(joined.data(), joined.size(), out, tlvs);
  }
  if (result == ParseResult::kInvalid) return {Next::kInvalid, 0};
  if (result == ParseResult::kComplete) {
    const uint32_t here = static_cast<uint32_t>(out->length - before);
    partial_.clear();
    return {Next::kComplete, here};
  }
  // Incomplete: every byte seen is header, so all of it is consumed, and the next peek waits
  // for new bytes instead of seeing these again.
  if (before + len >= kMaxAcceptedProxyHeader) return {Next::kInvalid, 0};
  partial_.append(peeked, len);
  return {Next::kMore, static_cast<uint32_t>(len)};
}

}  // namespace ringlb
