// ringlb's own lines on stderr (not the access log): one level each, one write(2) each, so that
// lines from several threads never interleave.
//
// Form: "ringlb: LEVEL: message" on a terminal or file; "<N>message" when stderr is the journal
// (JOURNAL_STREAM set), the sd-daemon(3) prefix journald turns into the entry's priority.
#pragma once

#include "server/base/log_level.h"

namespace ringlb {

// Lines above `level` (less severe) are dropped. Info until set; call before threads start.
void set_log_level(LogLevel level);

// Reads JOURNAL_STREAM again (tests; ringlb itself decides once, at the first line).
void reset_log_destination();

// printf-style; a trailing newline is added (one in `fmt` is not needed).
void log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace ringlb
