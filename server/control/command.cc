#include "server/control/command.h"

#include <array>

#include "server/config/config.h"

namespace ringlb::control {
namespace {

struct VerbInfo {
  Verb verb;
  const char* name;
  const char* usage;  // the arguments, for the error that says how it is written
  size_t args;
};

constexpr std::array<VerbInfo, 8> kVerbs = {{
    {Verb::kListeners, "listeners", "", 0},
    {Verb::kConnections, "connections", "", 0},
    {Verb::kBackends, "backends", "", 0},
    {Verb::kOverrides, "overrides", "", 0},
    {Verb::kSetWeight, "set-weight", " CLUSTER BACKEND N|reset", 3},
    {Verb::kDrain, "drain", " CLUSTER BACKEND", 2},
    {Verb::kDisable, "disable", " CLUSTER BACKEND", 2},
    {Verb::kEnable, "enable", " CLUSTER BACKEND", 2},
}};

const VerbInfo& info(Verb v) { return kVerbs[static_cast<size_t>(v)]; }

bool needs_quotes(std::string_view word) {
  if (word.empty()) return true;
  for (char ch : word) {
    if (ch == ' ' || ch == '\t' || ch == '"' || ch == '\\') return true;
  }
  return false;
}

// What the error shows of a word from the client: printable, and not a whole line of it.
std::string shown(std::string_view word) {
  std::string out;
  for (char ch : word.substr(0, 80)) out += (ch >= 0x20 && ch < 0x7f) ? ch : '?';
  return word.size() > 80 ? out + "..." : out;
}

std::string verbs_list() {
  std::string out;
  for (const VerbInfo& v : kVerbs) out += (out.empty() ? "" : ", ") + std::string(v.name);
  return out;
}

}  // namespace

const char* verb_name(Verb v) { return info(v).name; }

Status split_words(std::string_view line, std::vector<std::string>* words) {
  words->clear();
  size_t i = 0;
  for (;;) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i == line.size()) return {};
    std::string word;
    if (line[i] != '"') {
      for (; i < line.size() && line[i] != ' ' && line[i] != '\t'; ++i) {
        const unsigned char ch = static_cast<unsigned char>(line[i]);
        if (ch < 0x20 || ch == 0x7f) return Status::error("control character in the command (byte " + std::to_string(i + 1) + ")");
        if (ch == '"' || ch == '\\') return Status::error("a quote or backslash inside the word '" + shown(line.substr(0, i)) + "...'");
        word += line[i];
      }
    } else {
      const size_t start = i++;
      for (;; ++i) {
        if (i == line.size()) return Status::error("unterminated quote at byte " + std::to_string(start + 1));
        const unsigned char ch = static_cast<unsigned char>(line[i]);
        if (ch < 0x20 || ch == 0x7f) return Status::error("control character in the command (byte " + std::to_string(i + 1) + ")");
        if (ch == '"') break;
        if (ch == '\\') {
          if (i + 1 == line.size() || (line[i + 1] != '"' && line[i + 1] != '\\')) {
            return Status::error("bad escape at byte " + std::to_string(i + 1) + " (only \\\" and \\\\)");
          }
          ++i;
        }
        word += line[i];
      }
      ++i;  // the closing quote, which must end the word
      if (i < line.size() && line[i] != ' ' && line[i] != '\t') {
        return Status::error("text right after the closing quote at byte " + std::to_string(i + 1));
      }
    }
    words->push_back(std::move(word));
  }
}

Status parse_command(std::string_view line, Command* out) {
  std::vector<std::string> words;
  RINGLB_RETURN_IF_ERROR(split_words(line, &words));
  const bool json = !words.empty() && words[0] == "json";
  if (json) words.erase(words.begin());
  if (words.empty()) return Status::error(std::string(json ? "json takes a command" : "empty command") + " (" + verbs_list() + ")");
  const VerbInfo* verb = nullptr;
  for (const VerbInfo& v : kVerbs) verb = words[0] == v.name ? &v : verb;
  if (verb == nullptr) return Status::error("unknown command '" + shown(words[0]) + "' (" + verbs_list() + ")");
  if (words.size() - 1 != verb->args) {
    return Status::error(std::string(verb->name) + " takes " + std::to_string(verb->args) + " argument" +
                         (verb->args == 1 ? "" : "s") + ", not " + std::to_string(words.size() - 1) + ": " +
                         verb->name + verb->usage);
  }
  Command c;
  c.verb = verb->verb;
  c.json = json;
  if (verb->args >= 2) {
    c.cluster = words[1];
    c.backend = words[2];
    // Names are checked against the running clusters by the server; these can never match one.
    if (!check_name(c.cluster).ok()) return Status::error("unknown cluster '" + shown(c.cluster) + "'");
    if (c.backend.empty()) return Status::error("empty backend name");
  }
  if (c.verb == Verb::kSetWeight && words[3] != "reset") {
    uint64_t w = 0;
    if (!parse_uint(words[3], 0, limits::kMaxWeight, &w)) {
      return Status::error("weight '" + shown(words[3]) + "' must be 0 to " + std::to_string(limits::kMaxWeight) + " or reset");
    }
    c.weight = static_cast<uint32_t>(w);
  }
  *out = std::move(c);
  return {};
}

std::string quote_word(std::string_view word) {
  if (!needs_quotes(word)) return std::string(word);
  std::string out = "\"";
  for (char ch : word) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

std::string join_words(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) out += (out.empty() ? "" : " ") + quote_word(w);
  return out;
}

std::string format_command(const Command& c) {
  std::vector<std::string> words;
  if (c.json) words.push_back("json");
  words.push_back(verb_name(c.verb));
  if (info(c.verb).args >= 2) {
    words.push_back(c.cluster);
    words.push_back(c.backend);
  }
  if (c.verb == Verb::kSetWeight) words.push_back(c.weight ? std::to_string(*c.weight) : "reset");
  return join_words(words);
}

}  // namespace ringlb::control
