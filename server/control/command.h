// The control socket's command language, parsed without sockets (and fuzzed: server/fuzz/).
// A command is one line of words separated by spaces or tabs; a word holding a space, a quote
// or a backslash is written in double quotes with \" and \\ (a unix: backend path may have
// spaces). The commands:
//   listeners | connections | backends | overrides
//   set-weight CLUSTER BACKEND N|reset   (N: 0 to limits::kMaxWeight; reset: the configured one)
//   drain CLUSTER BACKEND | disable CLUSTER BACKEND | enable CLUSTER BACKEND
// Any of them after the word "json" ("json backends") is answered in JSON (but listeners).
// ("ready" is only a step of a takeover, read by the control server in that state.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/base/error.h"

namespace ringlb::control {

enum class Verb : uint8_t {
  kListeners,    // takeover: the listening sockets
  kConnections,  // live connections with TCP_INFO
  kBackends,     // the table of every cluster's backends
  kOverrides,    // the runtime state as commands (what a takeover carries over)
  kSetWeight,
  kDrain,
  kDisable,
  kEnable,
};
const char* verb_name(Verb v);

struct Command {
  Verb verb = Verb::kBackends;
  std::string cluster;  // the backend commands only
  std::string backend;
  std::optional<uint32_t> weight;  // set-weight N; empty for "reset"
  // Written "json COMMAND": the answer is one JSON object (server/control/json_answers.h).
  bool json = false;
  bool operator==(const Command&) const = default;
  // Whether it changes a backend (set-weight, drain, disable, enable).
  bool changes_backend() const { return verb >= Verb::kSetWeight; }
};

// Splits `line` into words (quoting above); the error says what is wrong.
Status split_words(std::string_view line, std::vector<std::string>* words);
// Parses one command line (without its '\n'); the error is one line that names the bad part.
Status parse_command(std::string_view line, Command* out);
// `word` as the parser reads it back: quoted only when it must be.
std::string quote_word(std::string_view word);
// Words joined into a line that splits back into them.
std::string join_words(const std::vector<std::string>& words);
// The command as a line that parses back to it.
std::string format_command(const Command& c);

}  // namespace ringlb::control
