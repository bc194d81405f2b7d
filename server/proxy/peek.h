// What every peek at a client's first bytes (a PROXY header's, a ClientHello's) does with its
// completion before its phase reads the bytes.
#pragma once

#include <cerrno>

#include "server/proxy/io.h"
#include "server/proxy/session.h"

namespace ringlb::proxy {

// Returns true with the peeked bytes in c.buf for the caller to read (and release); or false
// with *step set: waiting for a buffer (or retrying at once, *retry), or closing: at EOF as
// `at_eof`, else by the error.
inline bool take_peek(Io& io, Session& s, const Completion& c, metrics::CloseReason at_eof, Step* step,
                      bool* retry) {
  *retry = false;
  if (c.res == -ENOBUFS) {
    *retry = !io.wait_for_buffer(s, kUp);
    *step = Step::wait();
    return false;
  }
  if (c.res <= 0) {
    io.release(c.buf);
    *step = Step::close(c.res == 0 ? at_eof : close_reason_for(c.res));
    return false;
  }
  return true;
}

}  // namespace ringlb::proxy
