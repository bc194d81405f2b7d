// libFuzzer entry point: the control socket's command parser (server/control/command.h), which
// reads whatever a local client writes. A line it accepts, formatted again, parses to the same
// command, and splits into the same words; a refusal is one printable line, of bounded length.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "server/control/command.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "control_command_fuzz: invariant broken: %s\n", what);
    abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringlb::control;
  // The server hands the parser one line without its '\n', of at most about 1 KiB.
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  Command c;
  const ringlb::Status parsed = parse_command(line, &c);
  if (!parsed.ok()) {
    const std::string& why = parsed.message();
    check(why.find('\n') == std::string::npos, "a refusal is one line");
    for (char ch : why) check(static_cast<unsigned char>(ch) >= 0x20, "a refusal is printable");
    check(why.size() < 400, "a refusal is short");
    return 0;
  }
  const std::string again = format_command(c);
  Command reparsed;
  check(parse_command(again, &reparsed).ok(), "a formatted command parses");
  check(reparsed == c, "a formatted command parses to itself");
  check(format_command(reparsed) == again, "formatting is stable");
  std::vector<std::string> words, rewords;
  check(split_words(line, &words).ok(), "an accepted line splits");
  check(split_words(join_words(words), &rewords).ok() && rewords == words, "words round-trip through quoting");
  return 0;
}
