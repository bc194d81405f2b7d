// libFuzzer entry point for read_client_hello. Build it with clang's -fsanitize=fuzzer (and
// address,undefined) to fuzz; without clang, //tests/protocol:client_hello_fuzz_corpus_test runs
// it over the seed corpus in tests/protocol/corpus/client_hello/.
//
// It checks what the worker's peek loop relies on: each answer is consistent on its own, every
// prefix (what an earlier peek saw) agrees with the whole input, a kNeedMore holds until its
// hint, following the hints reaches the same answer, and a smaller max_len only ever turns an
// answer into kBad.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>

#include "server/protocol/client_hello.h"

namespace {

using ringlb::protocol::HelloResult;
using ringlb::protocol::HelloStatus;
using ringlb::protocol::kMaxClientHello;
using ringlb::protocol::read_client_hello;

// Not assert(): the build is optimised with NDEBUG by default, and a fuzz target that checks
// nothing finds nothing.
#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                      \
    }                                                                               \
  } while (0)

bool same(const HelloResult& a, const HelloResult& b) {
  return a.status == b.status && a.length == b.length && a.server_name == b.server_name &&
         strcmp(a.error, b.error) == 0;
}

bool is_lowercase(const std::string& name) {
  for (const char c : name) {
    if (c >= 'A' && c <= 'Z') return false;
  }
  return true;
}

// What holds for any answer about `size` bytes, whatever the bytes.
void check_alone(const HelloResult& r, size_t size, size_t max_len) {
  FUZZ_CHECK(r.error != nullptr);
  switch (r.status) {
    case HelloStatus::kDone:
      FUZZ_CHECK(r.length > 0 && r.length <= size && r.length <= max_len);
      FUZZ_CHECK(r.error[0] == '\0');
      FUZZ_CHECK(r.server_name.empty() || ringlb::protocol::is_valid_server_name(r.server_name));
      FUZZ_CHECK(is_lowercase(r.server_name));
      break;
    case HelloStatus::kNeedMore:
      // Waiting is only for bytes that can still come: never past max_len.
      FUZZ_CHECK(r.length > size && r.length <= max_len);
      FUZZ_CHECK(r.error[0] == '\0' && r.server_name.empty());
      break;
    case HelloStatus::kBad:
      FUZZ_CHECK(r.error[0] != '\0');
      break;
  }
}

// `part` is the answer for the first `n` bytes of the input whose answer is `whole`.
void check_prefix(const HelloResult& part, size_t n, const HelloResult& whole) {
  switch (part.status) {
    case HelloStatus::kBad:
    case HelloStatus::kDone:
      FUZZ_CHECK(same(part, whole));  // final: more bytes change nothing
      break;
    case HelloStatus::kNeedMore:
      if (whole.status == HelloStatus::kDone) FUZZ_CHECK(n < whole.length);
      if (whole.status != HelloStatus::kBad) FUZZ_CHECK(part.length <= whole.length);
      break;
  }
}

// The worker's loop: peek, and peek again once the hint's worth of bytes has arrived.
void check_following_hints(std::span<const uint8_t> all, const HelloResult& whole) {
  size_t have = 0;
  for (;;) {
    const HelloResult r = read_client_hello(all.first(have));
    if (r.status != HelloStatus::kNeedMore || r.length > all.size()) {
      FUZZ_CHECK(same(r, whole));
      return;
    }
    FUZZ_CHECK(r.length > have);
    have = r.length;
  }
}

void check_max_len(std::span<const uint8_t> all, const HelloResult& whole, size_t max_len) {
  const HelloResult r = read_client_hello(all, max_len);
  check_alone(r, all.size(), max_len);
  if (all.size() >= max_len) FUZZ_CHECK(r.status != HelloStatus::kNeedMore);
  if (r.status != HelloStatus::kBad) {
    // The default max_len is at least as large, so it allows this answer too.
    FUZZ_CHECK(max_len > kMaxClientHello || same(r, whole));
  }
  if (whole.status == HelloStatus::kDone && max_len <= kMaxClientHello) {
    FUZZ_CHECK(max_len >= whole.length ? same(r, whole) : r.status == HelloStatus::kBad);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> all(data, size);
  const HelloResult whole = read_client_hello(all);
  check_alone(whole, size, kMaxClientHello);
  HelloResult waiting;  // the last kNeedMore, which must hold until its hint
  for (size_t n = 0; n < size; ++n) {
    const HelloResult part = read_client_hello(all.first(n));
    check_alone(part, n, kMaxClientHello);
    check_prefix(part, n, whole);
    if (waiting.status == HelloStatus::kNeedMore && n < waiting.length) {
      FUZZ_CHECK(same(part, waiting));
    }
    waiting = part;
  }
  if (waiting.status == HelloStatus::kNeedMore && size < waiting.length) {
    FUZZ_CHECK(same(whole, waiting));
  }
  check_following_hints(all, whole);
  check_max_len(all, whole, size);
  check_max_len(all, whole, size / 2);
  if (whole.status == HelloStatus::kDone) {
    check_max_len(all, whole, whole.length);
    check_max_len(all, whole, whole.length - 1);
  }
  return 0;
}
