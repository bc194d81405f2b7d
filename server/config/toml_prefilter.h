// What toml++ 3.3.0 (Debian 12) must not be given, found by fuzzing it (tools/fuzz.sh): its
// is_non_ascii_horizontal_whitespace() reaches __builtin_unreachable() for whole ranges of code
// points (U+00A1-U+0499, U+2C5E-U+3057 and U+FB26-U+FEFE, but for a few), wherever it happens to
// ask, and its release build assumes that a key follows '[' and a dotted key's '.'. Each of the
// five findings is a test in tests/server/toml_config_test.cc.
#pragma once

#include <cstddef>
#include <string>

namespace ringlb::toml_prefilter {

// Whether toml++ 3.3.0 can classify `c` without undefined behaviour.
bool safe_code_point(char32_t c);

// Rewrites `text` into *out, the same TOML document with nothing toml++ cannot read safely: a
// code point it cannot classify becomes its \uXXXX escape in a basic string and is dropped in a
// comment. Returns 0, or the line of what is refused (*why says what): such a code point in a
// literal string (no escape exists there) or outside any string, other non-ASCII outside strings
// and comments, a table header or dotted key without a name. Whatever the scan takes for a
// string or a comment, *out holds no code point toml++ cannot classify.
size_t prepare(const std::string& text, std::string* out, std::string* why);

}  // namespace ringlb::toml_prefilter
