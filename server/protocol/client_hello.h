// Reads a TLS ClientHello off the start of a client's byte stream for SNI routing (nginx's
// ssl_preread, HAProxy's req.ssl_sni): the server name the client asked for, without
// terminating TLS, so the connection can be routed on it and then proxied byte for byte.
//
// Made for a peek loop: the intake phase peeks (MSG_PEEK) at what has arrived, calls
// read_client_hello on all of it, and peeks again on kNeedMore once more bytes are in. Nothing is
// consumed: the backend gets the ClientHello as the client sent it. A call looks only at the bytes
// it is given, so the answer for some bytes never changes as more arrive behind them (kBad stays
// kBad, kDone stays the same kDone), and with max_len bytes in hand the answer is never kNeedMore.
// Pure: no sockets, no io_uring.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ringlb::protocol {

// The most bytes a ClientHello may take by default, its records' headers included. Real ones
// are a few hundred bytes (with post-quantum key shares, under 2 KiB); waiting for more than a
// record's worth of hello is waiting on an attack or a mistake.
inline constexpr size_t kMaxClientHello = 16384;

enum class HelloStatus : uint8_t {
  kNeedMore,  // nothing wrong so far; `length` bytes at least must have arrived to say more
  kDone,      // a whole, well-formed ClientHello; `length` and `server_name` are set
  kBad,       // not TLS, malformed, or longer than max_len; `error` says which
};

struct HelloResult {
  HelloStatus status = HelloStatus::kBad;
  // kDone: the bytes the ClientHello takes, from the first record's header to the end of the
  // record holding its last byte (several records if it came fragmented). Bytes behind it (early
  // data, say) are not counted. kNeedMore: the answer stays this same kNeedMore until there are
  // at least `length` bytes (the next byte a check looks at: a header byte, or a record's end);
  // always more than were given and at most max_len. A lower bound for the next peek, not where
  // the hello ends.
  size_t length = 0;
  // kDone: the SNI extension's host_name, lowercased and without a trailing dot; "" when the
  // client sent no SNI extension.
  std::string server_name;
  // kBad: why, a static string for logs; "" otherwise.
  const char* error = "";
};

// Reads the ClientHello at the start of `bytes` (everything received so far). `max_len` bounds
// `length`: a hello that needs more bytes than that is kBad as soon as its lengths say so.
HelloResult read_client_hello(std::span<const uint8_t> bytes, size_t max_len = kMaxClientHello);

// Whether `name` is a host name the reader would accept (once lowercased, without a trailing
// dot): 1 to 255 bytes of letters, digits, '-', '_' and '.', with no empty label. The SNI route
// patterns are held to the same rule, so a pattern can only name what a client can send.
bool is_valid_server_name(std::string_view name);

}  // namespace ringlb::protocol
