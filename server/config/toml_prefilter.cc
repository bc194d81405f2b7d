#include "server/config/toml_prefilter.h"

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace ringlb::toml_prefilter {
namespace {

enum class In : uint8_t { kCode, kComment, kBasic, kLiteral, kMultiBasic, kMultiLiteral };

// The line of the first non-ASCII byte outside a string or a comment, or of a table header or
// dotted key without a name, or 0; *where gets what each byte is in. TOML allows non-ASCII only
// in strings and comments. Conservative where toml++ would be: a quote opens a string only
// where a string can start (at the start of a line, after '=', '[', ',' or '{' where a value may
// start, or after '.' in a key), and a one-line string left open at the end of its line was no
// string: its bytes are checked again.
size_t scan(const std::string& text, std::vector<In>* where) {
  where->assign(text.size(), In::kCode);
  In in = In::kCode;
  size_t line = 1;
  size_t i = text.rfind("\xEF\xBB\xBF", 0) == 0 ? 3 : 0;  // a byte order mark may open the file
  char last = '\n';          // the last non-blank byte outside strings, on this line
  bool seen_equals = false;  // this line has its '=': dotted keys are behind us
  size_t string_start = 0;   // where the open one-line string began
  int depth = 0;             // brackets open: inside an array a '[' opens no table header
  int braces = 0;            // inline tables open: each of their keys has its '='
  auto triple = [&](size_t at, char q) {
    return at + 2 < text.size() && text[at] == q && text[at + 1] == q && text[at + 2] == q;
  };
  for (; i < text.size(); ++i) {
    const char c = text[i];
    (*where)[i] = in;
    if (c == '\n' && (in == In::kBasic || in == In::kLiteral)) {
      // A one-line string open at the end of its line: toml++ may not have read it as a string.
      for (size_t j = string_start; j < i; ++j) {
        if (static_cast<unsigned char>(text[j]) >= 0x80) return line;
      }
      in = In::kCode;
    }
    if (c == '\n') {
      ++line;
      if (in == In::kComment) in = In::kCode;
      if (in == In::kCode) {
        last = '\n';
        seen_equals = false;
      }
      continue;
    }
    switch (in) {
      case In::kCode: {
        if (static_cast<unsigned char>(c) >= 0x80) return line;
        const bool string_may_start = last == '\n' || last == '=' || last == '[' || last == ',' ||
                                      last == '{' || (last == '.' && !seen_equals);
        // A key must follow a table header's '[' ('[[') and a dotted key's '.': toml++ 3.3.0
        // only asserts that one does (and its release build assumes it), so it is checked here.
        if ((c == '[' && last == '\n' && depth == 0) || (c == '.' && !seen_equals && depth == 0 && last != '\n')) {
          size_t j = i + 1;
          if (c == '[' && j < text.size() && text[j] == '[') ++j;
          while (j < text.size() && (text[j] == ' ' || text[j] == '\t')) ++j;
          const char k = j < text.size() ? text[j] : '\n';
          if (!(isalnum(static_cast<unsigned char>(k)) || k == '_' || k == '-' || k == '"' || k == '\'' ||
                static_cast<unsigned char>(k) >= 0x80)) {
            return line;
          }
        }
        if (c == '[') ++depth;
        if (c == ']' && depth > 0) --depth;
        if (c == '#') {
          in = In::kComment;
        } else if ((c == '"' || c == '\'') && string_may_start) {
          const bool multi = triple(i, c);
          in = c == '"' ? (multi ? In::kMultiBasic : In::kBasic) : (multi ? In::kMultiLiteral : In::kLiteral);
          string_start = i + 1;
          if (multi) i += 2;
        } else if (c != ' ' && c != '\t') {
          // '[' and '{' open an array or inline table (after which a string may start) only where
          // a value may start; a second '=' outside an inline table assigns nothing. Elsewhere
          // toml++ is past an error, and what follows is no string to it (the fourth finding).
          const bool value_may_start = last == '\n' || last == '=' || last == '[' || last == ',' || last == '{';
          const bool opens = (c != '[' && c != '{' && c != '=') || (c == '=' ? !seen_equals || braces > 0 : value_may_start);
          if (c == '{') ++braces;
          if (c == '}' && braces > 0) --braces;
          if (c == '=') seen_equals = true;
          last = opens ? c : 'x';
        }
        break;
      }
      case In::kComment:
        break;
      case In::kBasic:
      case In::kMultiBasic:
        if (c == '\\' && i + 1 < text.size() && text[i + 1] != '\n') {
          ++i;  // an escaped byte: never a non-ASCII one (no TOML escape is)
          if (static_cast<unsigned char>(text[i]) >= 0x80) return line;
          (*where)[i] = in;
        } else if (in == In::kBasic && c == '"') {
          in = In::kCode;
          last = '"';
        } else if (in == In::kMultiBasic && triple(i, '"')) {
          while (i + 1 < text.size() && text[i + 1] == '"') ++i;  // """" ends with a quote inside
          in = In::kCode;
          last = '"';
        }
        break;
      case In::kLiteral:
        if (c == '\'') {
          in = In::kCode;
          last = '\'';
        }
        break;
      case In::kMultiLiteral:
        if (triple(i, '\'')) {
          while (i + 1 < text.size() && text[i + 1] == '\'') ++i;
          in = In::kCode;
          last = '\'';
        }
        break;
    }
  }
  if (in == In::kBasic || in == In::kLiteral) {
    for (size_t j = string_start; j < text.size(); ++j) {
      if (static_cast<unsigned char>(text[j]) >= 0x80) return line;
    }
  }
  return 0;
}


// One UTF-8 sequence at text[i]: its code point and length, or 0 when it is not UTF-8 (an
// overlong form, a surrogate, a stray continuation byte, a sequence cut short).
size_t decode(const std::string& text, size_t i, char32_t* c) {
  const auto byte = [&](size_t k) { return k < text.size() ? static_cast<unsigned char>(text[k]) : 0u; };
  const unsigned lead = byte(i);
  size_t n = 0;
  char32_t min = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    n = 2, *c = lead & 0x1F, min = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    n = 3, *c = lead & 0x0F, min = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    n = 4, *c = lead & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    *c = (*c << 6) | (byte(i + k) & 0x3F);
  }
  if (*c < min || *c > 0x10FFFF || (*c >= 0xD800 && *c <= 0xDFFF)) return 0;
  return n;
}

}  // namespace

bool safe_code_point(char32_t c) {
  // toml++ 3.3.0's generated table (impl/unicode_autogenerated.h), as it decides: a code point
  // whose 1018-wide block it neither rules out by its mask nor lists reaches
  // TOML_UNREACHABLE there.
  if (c < 0xA0 || c > 0xFEFF) return true;
  const uint64_t block = (static_cast<uint64_t>(c) - 0xA0) / 0x3FA;
  if ((1ULL << block) & 0x7FFFFFFFFFFFF75EULL) return true;
  if (c == 0xA0 || c == 0x3000 || c == 0xFEFF) return true;
  return block == 5 || block == 7;
}

size_t prepare(const std::string& text, std::string* out, std::string* why) {
  std::vector<In> where;
  if (const size_t line = scan(text, &where); line != 0) {
    *why = "a non-ASCII character outside a string or a comment, or a table header or dotted key without a name";
    return line;
  }
  out->clear();
  out->reserve(text.size());
  size_t line = 1;
  for (size_t i = 0; i < text.size();) {
    const unsigned char b = static_cast<unsigned char>(text[i]);
    if (b == '\n') ++line;
    if (b < 0x80) {
      out->push_back(text[i++]);
      continue;
    }
    char32_t c = 0;
    const size_t n = decode(text, i, &c);
    if (n == 0) {
      *why = "not UTF-8";
      return line;
    }
    const bool bom = i == 0 && c == 0xFEFF;
    if (safe_code_point(c) || bom) {
      out->append(text, i, n);
    } else if (where[i] == In::kBasic || where[i] == In::kMultiBasic) {
      char escape[16];
      snprintf(escape, sizeof(escape), "\\u%04X", static_cast<unsigned>(c));
      out->append(escape);
    } else if (where[i] != In::kComment) {
      char code[16];
      snprintf(code, sizeof(code), "U+%04X", static_cast<unsigned>(c));
      *why = std::string(code) + " in a literal string: toml++ 3.3.0 cannot read it safely there; write it in a "
             "\"...\" string";
      return line;
    }  // in a comment it goes: nothing reads it
    i += n;
  }
  return 0;
}

}  // namespace ringlb::toml_prefilter
