// Runs the ClientHello fuzz entry point (server/protocol/client_hello_fuzz.cc) over the seed
// corpus and over every one-byte change of each seed: without clang there is no libFuzzer, but
// its invariants still hold on these, and a failing one aborts the test.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "server/protocol/client_hello.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace ringlb::protocol {
namespace {

const char kCorpus[] = "tests/protocol/corpus/client_hello";

std::vector<std::vector<uint8_t>> seeds() {
  std::vector<std::vector<uint8_t>> out;
  for (const auto& entry : std::filesystem::directory_iterator(kCorpus)) {
    std::ifstream in(entry.path(), std::ios::binary);
    out.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return out;
}

TEST(ClientHelloFuzzCorpus, SeedsCoverEveryAnswer) {
  const auto all = seeds();
  ASSERT_GE(all.size(), 10u) << "the corpus is missing from the runfiles";
  int done = 0, need_more = 0, bad = 0;
  for (const auto& seed : all) {
    switch (read_client_hello(seed).status) {
      case HelloStatus::kDone: ++done; break;
      case HelloStatus::kNeedMore: ++need_more; break;
      case HelloStatus::kBad: ++bad; break;
    }
  }
  EXPECT_GE(done, 7);
  EXPECT_GE(need_more, 1);
  EXPECT_GE(bad, 2);
}

TEST(ClientHelloFuzzCorpus, InvariantsHoldOnEverySeed) {
  for (const auto& seed : seeds()) LLVMFuzzerTestOneInput(seed.data(), seed.size());
}

// A poor man's mutator: each byte of each seed flipped, zeroed and set to 0xFF in turn. Most
// land in random bytes or key shares, but every length field and header gets bent too.
TEST(ClientHelloFuzzCorpus, InvariantsHoldOnOneByteChanges) {
  size_t runs = 0;
  for (auto seed : seeds()) {
    for (size_t i = 0; i < seed.size(); ++i) {
      const uint8_t original = seed[i];
      for (const uint8_t changed : {uint8_t(original ^ 0x01), uint8_t(0x00), uint8_t(0xFF)}) {
        seed[i] = changed;
        LLVMFuzzerTestOneInput(seed.data(), seed.size());
        ++runs;
      }
      seed[i] = original;
    }
  }
  EXPECT_GT(runs, 5000u);
}

}  // namespace
}  // namespace ringlb::protocol
