#include "server/protocol/client_hello.h"

#include <algorithm>
#include <bitset>
#include <vector>

namespace ringlb::protocol {
namespace {

constexpr uint8_t kHandshakeRecord = 22;
constexpr uint8_t kClientHelloMessage = 1;
constexpr uint16_t kServerNameExtension = 0;
constexpr uint8_t kHostNameType = 0;
constexpr size_t kRecordHeader = 5;     // type, version (2), length (2)
constexpr size_t kHandshakeHeader = 4;  // type, length (3)
// RFC 5246 6.2.3's bound for any record, 2^14 plus 2048 of expansion. A plaintext record (a
// ClientHello's) is at most 2^14; the slack tolerates lax clients, the bound stops a length
// running away.
constexpr size_t kMaxRecordPayload = 16384 + 2048;
constexpr size_t kMaxSessionId = 32;
constexpr size_t kRandom = 32;

HelloResult bad(const char* why) {
  HelloResult r;
  r.status = HelloStatus::kBad;
  r.error = why;
  return r;
}

HelloResult need_more(size_t until) {
  HelloResult r;
  r.status = HelloStatus::kNeedMore;
  r.length = until;
  return r;
}

size_t be16(const uint8_t* p) { return (size_t{p[0]} << 8) | p[1]; }
size_t be24(const uint8_t* p) { return (size_t{p[0]} << 16) | (size_t{p[1]} << 8) | p[2]; }

// A cursor over one length-delimited part of the ClientHello: a read that would run past the
// part's end fails and leaves the cursor as it was, so every nested length is checked against the
// length that holds it.
class Cursor {
 public:
  explicit Cursor(std::span<const uint8_t> bytes) : rest_(bytes) {}

  size_t left() const { return rest_.size(); }

  bool skip(size_t n) {
    if (rest_.size() < n) return false;
    rest_ = rest_.subspan(n);
    return true;
  }
  bool u8(size_t* out) {
    if (rest_.empty()) return false;
    *out = rest_[0];
    return skip(1);
  }
  bool u16(size_t* out) {
    if (rest_.size() < 2) return false;
    *out = be16(rest_.data());
    return skip(2);
  }
  // A vector with a `prefix`-byte (1 or 2) big-endian length in front, as TLS writes them.
  bool vector(size_t prefix, std::span<const uint8_t>* out) {
    Cursor peek = *this;
    size_t len = 0;
    if (!(prefix == 1 ? peek.u8(&len) : peek.u16(&len)) || peek.left() < len) return false;
    *out = peek.rest_.first(len);
    rest_ = peek.rest_.subspan(len);
    return true;
  }

 private:
  std::span<const uint8_t> rest_;
};

// One trailing dot is the absolute form of the same name (clients should not send it, RFC 6066
// section 3, but some do); routes are written without it.
const char* take_host_name(std::span<const uint8_t> raw, std::string* out) {
  std::string name(raw.begin(), raw.end());
  if (!name.empty() && name.back() == '.') name.pop_back();
  for (char& c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (!is_valid_server_name(name)) return "the SNI host_name is not a valid host name";
  *out = std::move(name);
  return nullptr;
}

// RFC 6066 section 3: a list of (name_type, name); only host_name (0) is defined. Entries of
// other types are skipped, as Go's crypto/tls does; a second host_name is forbidden.
const char* parse_server_name(std::span<const uint8_t> data, std::string* server_name) {
  Cursor ext(data);
  std::span<const uint8_t> list;
  if (!ext.vector(2, &list) || ext.left() != 0) {
    return "the server_name list's length does not match its extension's";
  }
  if (list.empty()) return "an empty server_name list";
  Cursor entries(list);
  bool have_host_name = false;
  while (entries.left() > 0) {
    size_t type = 0;
    std::span<const uint8_t> name;
    if (!entries.u8(&type) || !entries.vector(2, &name)) {
      return "a server_name entry overruns its list";
    }
    if (name.empty()) return "an empty server_name entry";
    if (type != kHostNameType) continue;
    if (have_host_name) return "two host_name entries in the server_name list";
    have_host_name = true;
    if (const char* why = take_host_name(name, server_name)) return why;
  }
  return nullptr;
}

const char* parse_extensions(std::span<const uint8_t> block, std::string* server_name) {
  // RFC 8446 4.2: "There MUST NOT be more than one extension of the same type". One bit per
  // possible type, 8 KiB of stack, rather than a sort: a hello may carry thousands.
  std::bitset<65536> seen;
  Cursor extensions(block);
  while (extensions.left() > 0) {
    size_t type = 0;
    std::span<const uint8_t> data;
    if (!extensions.u16(&type) || !extensions.vector(2, &data)) {
      return "an extension overruns the extensions block";
    }
    if (seen.test(type)) return "a duplicate extension";
    seen.set(type);
    if (type == kServerNameExtension) {
      if (const char* why = parse_server_name(data, server_name)) return why;
    }
  }
  return nullptr;
}

// The ClientHello's body (RFC 8446 4.1.2; RFC 5246 7.4.1.2 for the versions before).
const char* parse_body(std::span<const uint8_t> body, std::string* server_name) {
  Cursor hello(body);
  size_t version = 0;
  if (!hello.u16(&version) || !hello.skip(kRandom)) {
    return "the ClientHello ends inside its version or random";
  }
  if (version >> 8 != 3) return "the ClientHello's legacy_version is not 3.x";
  std::span<const uint8_t> session_id, cipher_suites, compression_methods, extensions;
  if (!hello.vector(1, &session_id)) return "the session_id overruns the ClientHello";
  if (session_id.size() > kMaxSessionId) return "a session_id longer than 32 bytes";
  if (!hello.vector(2, &cipher_suites)) return "the cipher_suites overrun the ClientHello";
  if (cipher_suites.empty() || cipher_suites.size() % 2 != 0) {
    return "the cipher_suites length is not a positive even number";
  }
  if (!hello.vector(1, &compression_methods)) {
    return "the compression_methods overrun the ClientHello";
  }
  if (compression_methods.empty()) return "no compression_methods";
  // Before TLS 1.3 the extensions block may be left out altogether.
  if (hello.left() == 0) return nullptr;
  if (!hello.vector(2, &extensions)) return "the extensions block overruns the ClientHello";
  if (hello.left() != 0) return "bytes after the extensions block";
  return parse_extensions(extensions, server_name);
}

}  // namespace

bool is_valid_server_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '.' || name.back() == '.') return false;
  char previous = 0;
  for (const char c : name) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!allowed || (c == '.' && previous == '.')) return false;
    previous = c;
  }
  return true;
}

// Walks the records from the start. Every check looks only at bytes that are there, in the same
// order whatever follows them, which is what makes a kBad or kDone final: more bytes behind the
// ones already judged cannot change the judgement.
HelloResult read_client_hello(std::span<const uint8_t> bytes, size_t max_len) {
  // The handshake bytes of the records so far. Most hellos fit one record, which is used where it
  // lies; a fragmented one is joined in `joined`.
  std::span<const uint8_t> stream;
  std::vector<uint8_t> joined;
  size_t pos = 0;  // where the current record's header starts
  for (;;) {
    // A record carries at least one byte (RFC 8446 5.1 forbids empty handshake fragments).
    if (pos + kRecordHeader + 1 > max_len) return bad("a ClientHello longer than max_len");
    const std::span<const uint8_t> rest = bytes.subspan(pos);
    if (!rest.empty() && rest[0] != kHandshakeRecord) {
      if (pos != 0) return bad("a record other than handshake inside the ClientHello");
      // No TLS content type has the top bit set; an SSLv2 record header (RFC 5246 appendix
      // E.2) always does. Such hellos are 20 years obsolete and carry no SNI.
      return bad(rest[0] & 0x80 ? "an SSLv2-style ClientHello" : "not a TLS handshake record");
    }
    if (rest.size() >= 2 && rest[1] != 3) return bad("a record version other than 3.x");
    if (rest.size() < kRecordHeader) {
      // The type and the version are judged byte by byte (GET or an alert is refused at its
      // first byte), the length when whole.
      return need_more(pos + (rest.size() < 2 ? rest.size() + 1 : kRecordHeader));
    }
    const size_t record_len = be16(rest.data() + 3);
    if (record_len == 0) return bad("an empty handshake record");
    if (record_len > kMaxRecordPayload) return bad("a record longer than 16384 + 2048 bytes");
    const size_t record_end = pos + kRecordHeader + record_len;
    if (record_end > max_len) return bad("a ClientHello longer than max_len");

    const auto payload =
        rest.subspan(kRecordHeader, std::min(record_len, rest.size() - kRecordHeader));
    if (pos == 0) {
      stream = payload;
    } else {
      if (joined.empty()) joined.assign(stream.begin(), stream.end());
      joined.insert(joined.end(), payload.begin(), payload.end());
      stream = joined;
    }
    if (!stream.empty() && stream[0] != kClientHelloMessage) {
      return bad("the first handshake message is not a ClientHello");
    }
    if (stream.size() >= kHandshakeHeader) {
      const size_t message_len = kHandshakeHeader + be24(stream.data() + 1);
      // The handshake bytes up to this record's end, whether or not all of them are here yet.
      const size_t declared = stream.size() - payload.size() + record_len;
      if (declared < message_len) {
        // The rest needs one more record at least: say no now rather than wait for it.
        if (record_end + kRecordHeader + (message_len - declared) > max_len) {
          return bad("a ClientHello longer than max_len");
        }
      } else {
        // Nothing may follow a ClientHello before the server answers, least of all in its
        // record: the backend would refuse it, and `length` would cut a record in two.
        if (declared > message_len) return bad("bytes after the ClientHello in its last record");
        if (stream.size() < message_len) return need_more(record_end);
        HelloResult done;
        if (const char* why = parse_body(stream.subspan(kHandshakeHeader), &done.server_name)) {
          return bad(why);
        }
        done.status = HelloStatus::kDone;
        done.length = record_end;
        return done;
      }
    }
    if (payload.size() < record_len) {
      // Likewise the handshake header: its type at once, its length when whole.
      const size_t before = stream.size() - payload.size();
      if (stream.empty()) return need_more(pos + kRecordHeader + 1);
      if (stream.size() < kHandshakeHeader) {
        return need_more(std::min(record_end, pos + kRecordHeader + kHandshakeHeader - before));
      }
      return need_more(record_end);
    }
    pos = record_end;
  }
}

}  // namespace ringlb::protocol
