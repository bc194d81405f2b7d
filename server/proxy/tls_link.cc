#include "server/proxy/tls_link.h"

#include <algorithm>

namespace ringlb::proxy {

uint32_t TlsSide::take_output() {
  if (sending() || !stream) return 0;
  const size_t n = std::min(stream->pending_output(), kTlsChunk);
  if (n == 0) return 0;
  if (tx.size() < n) tx.resize(kTlsChunk);
  tx_len = static_cast<uint32_t>(stream->take_output(tx.data(), n));
  tx_off = 0;
  return tx_len;
}

bool TlsSide::sent(uint32_t n) {
  tx_off += n;
  if (tx_off < tx_len) return false;
  tx_off = tx_len = 0;
  // An idle connection keeps no send buffer.
  if (stream && stream->pending_output() == 0) std::vector<uint8_t>().swap(tx);
  return true;
}

}  // namespace ringlb::proxy
