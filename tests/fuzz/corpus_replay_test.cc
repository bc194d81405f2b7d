// Runs a fuzz entry point (server/fuzz/, server/protocol/*_fuzz.cc) over its seed corpus and over
// one-byte changes of every seed. Without clang there is no libFuzzer, but the entry points'
// invariants must hold on these; a broken one aborts the test. CORPUS_DIR names the corpus.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<std::vector<uint8_t>> seeds() {
  std::vector<std::vector<uint8_t>> out;
  for (const auto& entry : std::filesystem::directory_iterator(CORPUS_DIR)) {
    std::ifstream in(entry.path(), std::ios::binary);
    out.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return out;
}

TEST(CorpusReplay, EverySeed) {
  const auto all = seeds();
  ASSERT_GE(all.size(), 8u) << "the corpus " << CORPUS_DIR << " is missing from the runfiles";
  for (const auto& seed : all) LLVMFuzzerTestOneInput(seed.data(), seed.size());
}

TEST(CorpusReplay, OneByteChangesOfEverySeed) {
  size_t runs = 0;
  for (auto seed : seeds()) {
    const size_t limit = std::min<size_t>(seed.size(), 2048);
    for (size_t i = 0; i < limit; ++i) {
      const uint8_t original = seed[i];
      for (const uint8_t changed : {uint8_t(original ^ 0x01), uint8_t(0x00), uint8_t(0xFF), uint8_t('\n')}) {
        seed[i] = changed;
        LLVMFuzzerTestOneInput(seed.data(), seed.size());
        ++runs;
      }
      seed[i] = original;
    }
    // And every truncation at a few points.
    for (size_t cut = 0; cut < seed.size(); cut += 1 + seed.size() / 32) LLVMFuzzerTestOneInput(seed.data(), cut);
  }
  EXPECT_GT(runs, 100u);
}

}  // namespace
