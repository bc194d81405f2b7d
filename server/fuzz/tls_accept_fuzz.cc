// libFuzzer entry point: the TLS termination phase (proxy/tls_accept) as a worker runs it, with
// arbitrary bytes in the client's place, through the fake seam of tests/proxy (the real driver,
// phases and TLS contexts; no kernel). The input is cut into recvs (each piece's length from its
// first byte), then EOF; every send completes whole. Whatever comes, the session ends closed
// with a TLS reason (or handshaken and routed), and every buffer goes back.
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/proxy/harness.h"
#include "tests/tls/test_pki.h"

namespace {

using ringlb::proxy::Phase;
using ringlb::proxy::testing::Harness;
using ringlb::proxy::testing::Request;

void check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "tls_accept_fuzz: invariant broken: %s\n", what);
    abort();
  }
}

const ringlb::Config& config() {
  static const ringlb::Config c = [] {
    char dir[] = "/tmp/ringlb-tls-accept-fuzz-XXXXXX";
    check(mkdtemp(dir) != nullptr, "a scratch directory");
    static const ringlb::tls::pki::StandardPki pki(dir);
    ringlb::Config out = ringlb::proxy::testing::default_config();
    out.buffer_size = 65536;
    ringlb::TlsListenerConfig t;
    t.certificates = pki.server_certificates();
    t.alpn = {"h2", "http/1.1"};
    t.client_ca = pki.ca_file;
    t.client_verify = ringlb::TlsClientVerify::kOptional;
    out.listen[0].tls = t;
    return out;
  }();
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr int kClient = ringlb::proxy::testing::kClientSlot;
  // One worker for every input, as in a daemon (its TLS contexts are made once); each input's
  // session ends freed, so the next starts from the same state.
  static Harness& h = *new Harness(config());
  h.ops->requests.clear();
  const size_t first = h.mark();
  const uint32_t id = h.arrive(kClient);
  size_t seen = first, at = 0;
  bool eof_sent = false;
  for (int round = 0; round < 200; ++round) {
    const Phase phase = h.session(id).phase;
    if (phase != Phase::kTlsAccept) break;
    bool moved = false;
    int recv_index = -1;
    while (seen < h.ops->requests.size()) {
      const Request r = h.ops->requests[seen++];
      if (r.slot != kClient) continue;
      if (r.kind == Request::kSend) {
        h.complete(r, static_cast<int>(r.len));
        moved = true;
      } else if (r.kind == Request::kRecv) {
        recv_index = static_cast<int>(seen - 1);
      }
    }
    if (recv_index >= 0) {
      const Request r = h.ops->requests[static_cast<size_t>(recv_index)];
      if (at < size) {
        const size_t n = std::min<size_t>(size - at, 1 + data[at] * 64u);
        h.receive(r, std::string(reinterpret_cast<const char*>(data) + at, n));
        at += n;
      } else {
        check(!eof_sent, "a recv after EOF");
        eof_sent = true;
        h.receive(r, "");
      }
      moved = true;
    }
    if (!moved) break;
  }
  // Past any deadline, then every request still out completes as the kernel's cancels would.
  h.advance(3600ULL * ringlb::proxy::testing::kSec);
  for (int round = 0; round < 10; ++round) {
    bool moved = false;
    while (seen < h.ops->requests.size()) {
      const Request r = h.ops->requests[seen++];
      moved = true;
      switch (r.kind) {
        case Request::kRecv:
        case Request::kSend:
        case Request::kSendBuffer:
        case Request::kConnect:
          h.complete(r, -ECANCELED);
          break;
        case Request::kCancelSlot:
        case Request::kCancel:
        case Request::kShutdown:
          h.complete(r, 0);
          break;
        case Request::kSocket:
          h.complete(r, -EMFILE);
          break;
        default:
          break;
      }
    }
    if (!moved) break;
  }
  const Phase end = h.session(id).phase;
  check(end == Phase::kFree, "the session is freed");
  check(h.ops->in_use == 0, "every buffer went back");
  return 0;
}
