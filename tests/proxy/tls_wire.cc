#include "tests/proxy/tls_wire.h"

#include <gtest/gtest.h>

namespace ringlb::proxy::testing {

bool TlsWire::sync() {
  bool moved = false;
  while (seen_ < h_.ops->requests.size()) {
    const Request r = h_.ops->requests[seen_++];  // a copy: completing adds requests
    if (r.slot != slot_) continue;
    if (r.kind == Request::kRecv) recv_ = r;
    if (r.kind == Request::kShutdown) ++shutdowns;
    if (r.kind != Request::kSend && r.kind != Request::kSendBuffer) continue;
    moved = true;
    if (fail_send_) {
      const int res = *fail_send_;
      fail_send_.reset();
      h_.complete(r, res);
      continue;
    }
    const uint32_t n = short_send ? static_cast<uint32_t>(*short_send) : r.len;
    short_send.reset();
    peer_.deliver(r.bytes.substr(0, n));
    ++sends;
    h_.complete(r, static_cast<int>(n));
  }
  return moved;
}

void TlsWire::run(int rounds) {
  for (int round = 0; round < rounds; ++round) {
    bool moved = sync();
    if (recv_) {
      const std::string out = peer_.take_output();
      if (!out.empty()) {
        answer(out);
        moved = true;
      }
    }
    if (!moved) return;
  }
}

void TlsWire::answer(const std::string& bytes) {
  sync();
  ASSERT_TRUE(recv_) << "no recv to answer";
  const Request r = *recv_;
  recv_.reset();
  h_.receive(r, bytes);
}

void TlsWire::fail_recv(int res) {
  sync();
  ASSERT_TRUE(recv_) << "no recv to fail";
  const Request r = *recv_;
  recv_.reset();
  h_.complete(r, res);
}

}  // namespace ringlb::proxy::testing
