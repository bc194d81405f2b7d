// read_client_hello on ClientHellos captured from openssl s_client (the seed corpus) and on ones
// built field by field here, so each length at each nesting level can be bent on its own.
#include "server/protocol/client_hello.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

namespace ringlb::protocol {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes corpus(const std::string& name) {
  std::ifstream in("tests/protocol/corpus/client_hello/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

Bytes text(std::string_view s) { return Bytes(s.begin(), s.end()); }

Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// `content` behind its `prefix`-byte big-endian length, as TLS writes vectors.
Bytes vec(size_t prefix, const Bytes& content) {
  Bytes out;
  for (size_t i = prefix; i-- > 0;) out.push_back(static_cast<uint8_t>(content.size() >> (8 * i)));
  return out + content;
}

Bytes extension(uint16_t type, const Bytes& data) {
  return Bytes{static_cast<uint8_t>(type >> 8), static_cast<uint8_t>(type)} + vec(2, data);
}

Bytes sni(std::string_view host) { return extension(0, vec(2, Bytes{0} + vec(2, text(host)))); }

const Bytes kSupportedVersions = extension(43, {0x02, 0x03, 0x04});

// A ClientHello handshake message; the defaults make a TLS 1.3 one for www.example.com.
struct Hello {
  Bytes version{3, 3};
  Bytes session_id = Bytes(32, 0x11);
  Bytes cipher_suites{0x13, 0x01, 0x13, 0x02};
  Bytes compression{0};
  std::optional<Bytes> extensions = sni("www.example.com") + kSupportedVersions;

  Bytes message() const {
    Bytes body = version + Bytes(32, 0xAB) + vec(1, session_id) + vec(2, cipher_suites) +
                 vec(1, compression);
    if (extensions) body = body + vec(2, *extensions);
    return Bytes{1} + vec(3, body);
  }
};

Bytes record(uint8_t type, const Bytes& payload) { return Bytes{type, 3, 1} + vec(2, payload); }

// `message` in handshake records of the given sizes, the last taking whatever is left.
Bytes records(const Bytes& message, std::vector<size_t> sizes = {}) {
  Bytes out;
  size_t pos = 0;
  sizes.push_back(message.size());
  for (const size_t size : sizes) {
    const size_t n = std::min(size, message.size() - pos);
    if (n > 0) out = out + record(22, Bytes(message.begin() + pos, message.begin() + pos + n));
    pos += n;
  }
  return out;
}

size_t get_be(const Bytes& b, size_t at, size_t width) {
  size_t v = 0;
  for (size_t i = 0; i < width; ++i) v = (v << 8) | b[at + i];
  return v;
}

void set_be(Bytes& b, size_t at, size_t width, size_t v) {
  for (size_t i = width; i-- > 0; v >>= 8) b[at + i] = static_cast<uint8_t>(v);
}

HelloResult read(const Bytes& bytes, size_t max_len = kMaxClientHello) {
  return read_client_hello(bytes, max_len);
}

HelloResult read_first(const Bytes& bytes, size_t n) {
  return read_client_hello(std::span<const uint8_t>(bytes).first(n));
}

// The bytes arriving one at a time: kNeedMore until exactly the hello's last byte, then kDone
// with the whole answer.
void expect_done_only_at_the_last_byte(const Bytes& bytes, size_t length, const std::string& name) {
  for (size_t n = 0; n < length; ++n) {
    const HelloResult r = read_first(bytes, n);
    ASSERT_EQ(r.status, HelloStatus::kNeedMore) << "at " << n << ": " << r.error;
    ASSERT_GT(r.length, n);
    ASSERT_LE(r.length, length) << "the hint overshoots the hello at " << n;
  }
  for (size_t n = length; n <= bytes.size(); ++n) {
    const HelloResult r = read_first(bytes, n);
    ASSERT_EQ(r.status, HelloStatus::kDone) << "at " << n << ": " << r.error;
    EXPECT_EQ(r.length, length);
    EXPECT_EQ(r.server_name, name);
  }
}

void expect_bad(const Bytes& bytes, const std::string& why_has, size_t max_len = kMaxClientHello) {
  const HelloResult r = read(bytes, max_len);
  EXPECT_EQ(r.status, HelloStatus::kBad) << "server_name " << r.server_name;
  EXPECT_NE(std::string(r.error).find(why_has), std::string::npos) << r.error;
}

struct Captured {
  const char* file;
  const char* server_name;
  size_t length;  // of the hello; the file may have more behind it
};

const Captured kCaptured[] = {
    {"openssl_tls13_www.example.com", "www.example.com", 339},
    {"openssl_tls12_only_api.example.org", "api.example.org", 212},
    {"openssl_tls13_only_Mixed.Case.Example.COM", "mixed.case.example.com", 256},
    {"openssl_no_sni", "", 297},
    {"fragmented_3_records", "www.example.com", 349},
    {"fragmented_header_1_byte_records", "www.example.com", 359},
    {"followed_by_application_data", "www.example.com", 339},
};

TEST(ClientHello, OpensslHellosGiveTheirServerName) {
  for (const Captured& c : kCaptured) {
    const Bytes bytes = corpus(c.file);
    ASSERT_GE(bytes.size(), c.length) << c.file;
    const HelloResult r = read(bytes);
    ASSERT_EQ(r.status, HelloStatus::kDone) << c.file << ": " << r.error;
    EXPECT_EQ(r.length, c.length) << c.file;
    EXPECT_EQ(r.server_name, c.server_name) << c.file;
  }
}

TEST(ClientHello, OpensslHellosByteByByte) {
  for (const Captured& c : kCaptured) {
    SCOPED_TRACE(c.file);
    expect_done_only_at_the_last_byte(corpus(c.file), c.length, c.server_name);
  }
}

TEST(ClientHello, TruncatedAndGarbageSeeds) {
  EXPECT_EQ(read(corpus("truncated")).status, HelloStatus::kNeedMore);
  expect_bad(corpus("garbage_http"), "not a TLS handshake record");
  expect_bad(corpus("garbage_sslv2_hello"), "SSLv2");
}

TEST(ClientHello, BuiltHelloInOneRecord) {
  const Bytes bytes = records(Hello().message()) + text("early data");
  expect_done_only_at_the_last_byte(bytes, bytes.size() - 10, "www.example.com");
}

TEST(ClientHello, SplitAcrossThreeRecords) {
  const Bytes message = Hello().message();
  const Bytes bytes = records(message, {30, 40});
  ASSERT_EQ(bytes.size(), message.size() + 3 * 5);
  expect_done_only_at_the_last_byte(bytes, bytes.size(), "www.example.com");
  // The hints: each header byte that is judged on its own (a record's type and version, the
  // handshake type), a header's end, then its record's end.
  const std::pair<size_t, size_t> hints[] = {{0, 1},   {1, 2},   {2, 5},   {4, 5},  {5, 6},
                                             {6, 9},   {9, 35},  {34, 35}, {35, 36}, {36, 37},
                                             {37, 40}, {40, 80}, {80, 81}, {85, bytes.size()}};
  for (const auto& [have, hint] : hints) {
    const HelloResult r = read_first(bytes, have);
    EXPECT_EQ(r.status, HelloStatus::kNeedMore) << have;
    EXPECT_EQ(r.length, hint) << have;
  }
}

TEST(ClientHello, HandshakeHeaderSplitAcrossRecords) {
  const Bytes message = Hello().message();
  const Bytes bytes = records(message, {1, 2, 1});
  expect_done_only_at_the_last_byte(bytes, bytes.size(), "www.example.com");
}

TEST(ClientHello, NoSniIsDoneWithoutAName) {
  Hello other_extensions;
  other_extensions.extensions = kSupportedVersions;
  Hello no_extensions_block;  // allowed before TLS 1.3
  no_extensions_block.extensions.reset();
  Hello empty_extensions_block;
  empty_extensions_block.extensions = Bytes{};
  for (const Hello& h : {other_extensions, no_extensions_block, empty_extensions_block}) {
    const Bytes bytes = records(h.message());
    const HelloResult r = read(bytes);
    ASSERT_EQ(r.status, HelloStatus::kDone) << r.error;
    EXPECT_EQ(r.length, bytes.size());
    EXPECT_EQ(r.server_name, "");
  }
}

TEST(ClientHello, NotTlsIsBadFromTheFirstByte) {
  const Bytes http = text("GET / HTTP/1.1\r\n\r\n");
  expect_bad(Bytes(http.begin(), http.begin() + 1), "not a TLS handshake record");
  expect_bad(http, "not a TLS handshake record");
  EXPECT_EQ(read({}).status, HelloStatus::kNeedMore);
  EXPECT_EQ(read({}).length, 1u) << "the first byte alone can tell";
}

TEST(ClientHello, RecordsThatCannotHoldAClientHello) {
  const Bytes message = Hello().message();
  const Bytes hello = records(message);
  expect_bad(record(20, {1}) + hello, "not a TLS handshake record");  // ChangeCipherSpec first
  expect_bad(record(21, {2, 40}) + hello, "not a TLS handshake record");  // an alert first
  // Application data between two fragments of the hello.
  const Bytes split = records(message, {30});
  expect_bad(Bytes(split.begin(), split.begin() + 35) + record(23, {1, 2, 3}),
             "other than handshake");
  Bytes version2 = hello;
  version2[1] = 2;
  expect_bad(Bytes(version2.begin(), version2.begin() + 2), "record version");
  expect_bad(record(22, {}) + hello, "empty handshake record");
  expect_bad(Bytes{22, 3, 1} + vec(2, Bytes(16384 + 2048 + 1, 0)), "record longer", 65536);
  // At the bound, a long record is only waited for.
  const HelloResult at_bound = read(Bytes{22, 3, 1, 0x48, 0x00, 1, 0x00, 0x47, 0xFC}, 65536);
  EXPECT_EQ(at_bound.status, HelloStatus::kNeedMore) << at_bound.error;
  EXPECT_EQ(at_bound.length, 5u + 18432);
}

TEST(ClientHello, HandshakeMessageOtherThanClientHello) {
  Bytes message = Hello().message();
  message[0] = 2;  // ServerHello
  expect_bad(records(message), "not a ClientHello");
}

TEST(ClientHello, HandshakeLengthMustEndWithARecord) {
  const Bytes hello = records(Hello().message());
  const size_t message_len = get_be(hello, 6, 3);
  // One byte short of its record: the record's last byte would follow the hello.
  Bytes shorter = hello;
  set_be(shorter, 6, 3, message_len - 1);
  expect_bad(shorter, "bytes after the ClientHello");
  // One byte past its record: the rest must come in a next record.
  Bytes longer = hello;
  set_be(longer, 6, 3, message_len + 1);
  EXPECT_EQ(read(longer).status, HelloStatus::kNeedMore);
  EXPECT_EQ(read(longer).length, longer.size() + 1);
  expect_bad(longer + record(23, {0}), "other than handshake");
}

// Where the default Hello's length fields sit in its one-record form.
struct LengthField {
  const char* name;
  size_t offset;
  size_t width;
};
const LengthField kLengthFields[] = {
    {"session_id", 43, 1},      {"cipher_suites", 76, 2}, {"compression_methods", 82, 1},
    {"extensions block", 84, 2}, {"server_name extension", 88, 2},
    {"server_name list", 90, 2}, {"host_name", 93, 2},
};

TEST(ClientHello, EachNestedLengthOneOffEitherWayIsBad) {
  const Bytes good = records(Hello().message());
  ASSERT_EQ(read(good).status, HelloStatus::kDone);
  const size_t expected[] = {32, 4, 1, good.size() - 86, 20, 18, 15};
  for (size_t i = 0; i < std::size(kLengthFields); ++i) {
    const LengthField& f = kLengthFields[i];
    const size_t value = get_be(good, f.offset, f.width);
    ASSERT_EQ(value, expected[i]) << f.name << ": the test's layout is off";
    for (const size_t bent_value : {value - 1, value + 1}) {
      Bytes bent = good;
      set_be(bent, f.offset, f.width, bent_value);
      const HelloResult r = read(bent);
      EXPECT_EQ(r.status, HelloStatus::kBad)
          << f.name << " " << bent_value << ": " << r.server_name;
    }
  }
}

TEST(ClientHello, BodyFields) {
  Hello version2;
  version2.version = {2, 0};
  expect_bad(records(version2.message()), "legacy_version");
  Hello long_session_id;
  long_session_id.session_id = Bytes(33, 1);
  expect_bad(records(long_session_id.message()), "session_id longer than 32");
  Hello no_suites;
  no_suites.cipher_suites = {};
  expect_bad(records(no_suites.message()), "cipher_suites length");
  Hello odd_suites;
  odd_suites.cipher_suites = {0x13, 0x01, 0x13};
  expect_bad(records(odd_suites.message()), "cipher_suites length");
  Hello no_compression;
  no_compression.compression = {};
  expect_bad(records(no_compression.message()), "no compression_methods");
  // Shorter than version and random.
  expect_bad(records(Bytes{1, 0, 0, 20, 3, 3} + Bytes(18, 0)), "version or random");
  // Bytes inside the hello behind a complete extensions block.
  Bytes trailing = Hello().message() + Bytes{0, 0};
  set_be(trailing, 1, 3, get_be(trailing, 1, 3) + 2);
  expect_bad(records(trailing), "bytes after the extensions block");
  // A lone byte where an extensions block would start.
  Hello stray;
  stray.extensions.reset();
  Bytes message = stray.message() + Bytes{0};
  set_be(message, 1, 3, get_be(message, 1, 3) + 1);
  expect_bad(records(message), "extensions block overruns");
}

TEST(ClientHello, AHelloOfExactlyMaxLenIsDoneOneMoreIsBad) {
  for (const size_t max_len : {size_t{512}, kMaxClientHello}) {
    for (const size_t first_record : {size_t{100}, size_t{100000}}) {
      SCOPED_TRACE("max_len " + std::to_string(max_len) + ", first record " +
                   std::to_string(first_record));
      Hello h;
      const size_t records_overhead = first_record < max_len ? 10 : 5;
      // Pad with RFC 7685's padding extension to exactly max_len bytes on the wire.
      const size_t without = records(h.message(), {first_record}).size();
      const Bytes padding(max_len - without - 4, 0);
      h.extensions = *h.extensions + extension(21, padding);
      const Bytes exact = records(h.message(), {first_record});
      ASSERT_EQ(exact.size(), max_len);
      ASSERT_EQ(exact.size(), h.message().size() + records_overhead);
      const HelloResult r = read(exact, max_len);
      EXPECT_EQ(r.status, HelloStatus::kDone) << r.error;
      EXPECT_EQ(r.length, max_len);
      EXPECT_EQ(read(exact, max_len - 1).status, HelloStatus::kBad);
      h.extensions = *h.extensions + Bytes{0xFF, 0xFE, 0, 0};  // one more, empty, extension
      const Bytes over = records(h.message(), {first_record});
      expect_bad(over, "longer than max_len", max_len + 3);
      // Never waiting past max_len: as soon as the lengths say so, even with bytes missing.
      expect_bad(Bytes(over.begin(), over.begin() + 9), "longer than max_len", max_len + 3);
    }
  }
}

TEST(ClientHello, OneByteRecordsUpToMaxLen) {
  // Before the handshake length is known, a next record needs its header and a byte at least.
  const Bytes bytes = records(Hello().message(), {1, 1, 1, 1});
  const Bytes first_record(bytes.begin(), bytes.begin() + 6);
  EXPECT_EQ(read(first_record, 12).status, HelloStatus::kNeedMore);
  EXPECT_EQ(read(first_record, 12).length, 7u);
  expect_bad(first_record, "longer than max_len", 11);
}

TEST(ClientHello, AnnouncedLengthOver16KiBIsBadAtOnce) {
  // A record and a handshake header announcing a hello longer than 16 KiB: no waiting.
  expect_bad(Bytes{22, 3, 1, 0x40, 0x10}, "longer than max_len");
  expect_bad(Bytes{22, 3, 1, 0x01, 0x00, 1, 0x00, 0x40, 0x00}, "longer than max_len");
  // A message that would fit in one record, but comes in two: the second record's header does
  // not fit, and the first record's header and the message's say so.
  const Bytes message = Bytes{1, 0, 0x3F, 0xF5} + Bytes(16373, 0);
  ASSERT_EQ(message.size() + 5 + 2, kMaxClientHello);
  const Bytes one = records(message);
  EXPECT_EQ(read(Bytes(one.begin(), one.begin() + 9)).status, HelloStatus::kNeedMore);  // fits
  const Bytes two = records(message, {message.size() - 1});
  expect_bad(Bytes(two.begin(), two.begin() + 9), "longer than max_len");
}

std::optional<std::string> name_of(const Bytes& host_name_entry_list) {
  Hello h;
  h.extensions = extension(0, vec(2, host_name_entry_list)) + kSupportedVersions;
  const HelloResult r = read(records(h.message()));
  if (r.status != HelloStatus::kDone) return std::nullopt;
  return r.server_name;
}

std::optional<std::string> name_of(std::string_view host) {
  return name_of(Bytes{0} + vec(2, text(host)));
}

TEST(ClientHello, HostNamesAreLowercasedAndValidated) {
  EXPECT_EQ(name_of("WWW.Example.COM"), "www.example.com");
  EXPECT_EQ(name_of("example.com."), "example.com");
  EXPECT_EQ(name_of("a-b_c.0.example"), "a-b_c.0.example");
  EXPECT_EQ(name_of("x"), "x");
  const std::string longest = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                              std::string(63, 'c') + "." + std::string(63, 'd');
  ASSERT_EQ(longest.size(), 255u);
  EXPECT_EQ(name_of(longest), longest);
  EXPECT_EQ(name_of(longest + "."), longest);
  for (const std::string& bad : {std::string(""), std::string("."), std::string("example.com.."),
                                std::string(".example.com"), std::string("a..com"),
                                std::string("a b.com"), std::string("a\0b.com", 7),
                                std::string("ex\xC3\xA4mple.com"), std::string("a/b"),
                                std::string("a:443"), std::string("*.example.com"),
                                longest + "e"}) {
    EXPECT_EQ(name_of(bad), std::nullopt) << bad;
  }
}

TEST(ClientHello, ServerNameListShapes) {
  const Bytes host = Bytes{0} + vec(2, text("a.example"));
  const Bytes other_type = Bytes{7} + vec(2, text("ignored"));
  EXPECT_EQ(name_of(other_type + host), "a.example");  // unknown name types are skipped
  EXPECT_EQ(name_of(other_type), "");
  EXPECT_EQ(name_of(host + host), std::nullopt);  // two host_names
  EXPECT_EQ(name_of(Bytes{}), std::nullopt);       // an empty list
  EXPECT_EQ(name_of(host + Bytes{0}), std::nullopt);  // a truncated second entry
  EXPECT_EQ(name_of(Bytes{7, 0, 0}), std::nullopt);   // an empty entry
  EXPECT_EQ(name_of(Bytes{0x80} + vec(2, text("ignored"))), "") << "0x80 is not host_name";
  Hello empty_extension;
  empty_extension.extensions = extension(0, {});
  expect_bad(records(empty_extension.message()), "server_name list");
  Hello byte_after_list;  // the extension longer than the list it holds
  byte_after_list.extensions = extension(0, vec(2, host) + Bytes{0});
  expect_bad(records(byte_after_list.message()), "server_name list");
}

TEST(ClientHello, DuplicateExtensionsAreBad) {
  Hello two_sni;
  two_sni.extensions = sni("a.example") + sni("b.example");
  expect_bad(records(two_sni.message()), "duplicate extension");
  Hello two_others;
  two_others.extensions = sni("a.example") + kSupportedVersions + kSupportedVersions;
  expect_bad(records(two_others.message()), "duplicate extension");
  Hello different;
  different.extensions = extension(0xFFFF, {}) + extension(0xFFFE, {}) + sni("a.example");
  EXPECT_EQ(read(records(different.message())).server_name, "a.example");
}

}  // namespace
}  // namespace ringlb::protocol
