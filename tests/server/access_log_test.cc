#include "server/access_log/access_log.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "metrics/stats.h"
#include "tests/support/process.h"

namespace ringlb {
namespace {

using testing::RunResult;
using testing::TempDir;
using testing::run_command;

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(AccessLine, EveryField) {
  sockaddr_in client{};
  client.sin_family = AF_INET;
  client.sin_port = htons(51234);
  inet_pton(AF_INET, "192.0.2.7", &client.sin_addr);
  sockaddr_in6 listener{};
  listener.sin6_family = AF_INET6;
  listener.sin6_port = htons(443);
  inet_pton(AF_INET6, "2001:db8::1", &listener.sin6_addr);
  const std::string backend = "10.0.0.5:80";
  AccessRecord r;
  r.start_unix_us = 1795325890123456;  // 2026-11-22T05:38:10.123456Z
  r.client = reinterpret_cast<const sockaddr*>(&client);
  r.listener = reinterpret_cast<const sockaddr*>(&listener);
  r.backend = &backend;
  const std::string listener_name = "web", cluster = "app", sni = "www.example.com";
  r.listener_name = &listener_name;
  r.cluster = &cluster;
  r.sni = &sni;
  r.worker = 1;
  r.queue_us = 1500;
  r.connect_attempts = 2;
  r.connect_us = 312;
  r.duration_us = 12534;
  r.bytes_from_client = 123;
  r.bytes_from_backend = 4567890123ULL;
  r.close_reason = "client_eof";
  std::string line;
  append_access_line(r, &line);
  EXPECT_EQ(line,
            "2026-11-22T05:38:10.123456Z client=192.0.2.7:51234 listener=[2001:db8::1]:443 "
            "listener_name=web cluster=app sni=www.example.com backend=10.0.0.5:80 worker=1 queue_us=1500 connect_attempts=2 connect_us=312 duration_us=12534 "
            "bytes_from_client=123 bytes_from_backend=4567890123 close=client_eof event=close\n");
}

TEST(AccessLine, UnknownValuesAreDashes) {
  AccessRecord r;
  r.start_unix_us = 0;
  r.close_reason = "no_backend";
  std::string line = "first\n";
  append_access_line(r, &line);  // appends
  EXPECT_EQ(line,
            "first\n1970-01-01T00:00:00.000000Z client=- listener=- listener_name=- cluster=- sni=- "
            "backend=- worker=0 "
            "queue_us=0 connect_attempts=0 connect_us=- duration_us=0 bytes_from_client=0 "
            "bytes_from_backend=0 close=no_backend event=close\n");
}

TEST(AccessLine, NamesThatAreNotPlainAreQuoted) {
  AccessRecord r;
  const std::string spaced = "my listener", dash = "-", empty = "", odd = "a=\"b\"\x01\xff";
  r.listener_name = &spaced;
  r.cluster = &dash;
  r.sni = &empty;
  std::string line;
  append_access_line(r, &line);
  EXPECT_NE(line.find(" listener_name=\"my listener\" cluster=\"-\" sni=\"\" backend=-"), std::string::npos) << line;
  r.sni = &odd;
  line.clear();
  append_access_line(r, &line);
  EXPECT_NE(line.find(" sni=\"a=\\\"b\\\"\\u0001\\ufffd\" backend=-"), std::string::npos) << line;
}

// The record of AccessLine.EveryField, with its addresses kept alive by the fixture.
struct FullRecord {
  FullRecord() {
    client.sin_family = AF_INET;
    client.sin_port = htons(51234);
    inet_pton(AF_INET, "192.0.2.7", &client.sin_addr);
    listener.sin6_family = AF_INET6;
    listener.sin6_port = htons(443);
    inet_pton(AF_INET6, "2001:db8::1", &listener.sin6_addr);
    r.start_unix_us = 1795325890123456;  // 2026-11-22T05:38:10.123456Z
    r.client = reinterpret_cast<const sockaddr*>(&client);
    r.listener = reinterpret_cast<const sockaddr*>(&listener);
    r.backend = &backend;
    r.listener_name = &listener_name;
    r.cluster = &cluster;
    r.sni = &sni;
    r.worker = 1;
    r.queue_us = 1500;
    r.connect_attempts = 2;
    r.connect_us = 312;
    r.duration_us = 12534;
    r.bytes_from_client = 123;
    r.bytes_from_backend = 4567890123ULL;
    r.close_reason = "client_eof";
  }
  sockaddr_in client{};
  sockaddr_in6 listener{};
  std::string backend = "10.0.0.5:80";
  std::string listener_name = "web", cluster = "app", sni = "www.example.com";
  AccessRecord r;
};

std::string json_line(const AccessRecord& r) {
  std::string line;
  append_access_json(r, &line);
  return line;
}

// The JSON string append_access_json writes for a backend named `name`.
std::string json_backend(const std::string& name) {
  AccessRecord r;
  r.backend = &name;
  const std::string line = json_line(r);
  const size_t from = line.find("\"backend\":") + 10;
  const size_t to = line.find(",\"worker\":");
  if (from < 10 || to == std::string::npos) return "(no backend field in " + line + ")";
  return line.substr(from, to - from);
}

TEST(AccessJson, EveryField) {
  FullRecord f;
  std::string line = "first\n";
  append_access_json(f.r, &line);  // appends
  EXPECT_EQ(line,
            "first\n{\"time\":\"2026-11-22T05:38:10.123456Z\",\"client\":\"192.0.2.7:51234\","
            "\"listener\":\"[2001:db8::1]:443\",\"listener_name\":\"web\",\"cluster\":\"app\","
            "\"sni\":\"www.example.com\",\"backend\":\"10.0.0.5:80\",\"worker\":1,"
            "\"queue_us\":1500,\"connect_attempts\":2,\"connect_us\":312,\"duration_us\":12534,"
            "\"bytes_from_client\":123,\"bytes_from_backend\":4567890123,\"close\":\"client_eof\",\"event\":\"close\"}\n");
}

// access-log-interval: a record of a connection still open says event=update, with its bytes
// and duration so far and no close reason, in both formats; the record at close says event=close.
TEST(AccessEvent, AnInterimRecordIsAnUpdateWithoutACloseReason) {
  FullRecord f;
  f.r.update = true;
  f.r.close_reason = nullptr;
  std::string line;
  append_access_line(f.r, &line);
  EXPECT_NE(line.find(" duration_us=12534 bytes_from_client=123 bytes_from_backend=4567890123 close=- event=update\n"),
            std::string::npos)
      << line;
  EXPECT_EQ(json_line(f.r).substr(json_line(f.r).find(",\"duration_us\":")),
            ",\"duration_us\":12534,\"bytes_from_client\":123,\"bytes_from_backend\":4567890123,\"close\":null,"
            "\"event\":\"update\"}\n");
  // The same record at close.
  f.r.update = false;
  f.r.close_reason = "backend_eof";
  line.clear();
  append_access_line(f.r, &line);
  EXPECT_NE(line.find(" close=backend_eof event=close\n"), std::string::npos) << line;
  EXPECT_NE(json_line(f.r).find(",\"close\":\"backend_eof\",\"event\":\"close\"}\n"), std::string::npos) << json_line(f.r);
}

TEST(AccessJson, UnknownValuesAreNull) {
  AccessRecord r;
  r.close_reason = "no_backend";
  EXPECT_EQ(json_line(r),
            "{\"time\":\"1970-01-01T00:00:00.000000Z\",\"client\":null,\"listener\":null,"
            "\"listener_name\":null,\"cluster\":null,\"sni\":null,\"backend\":null,\"worker\":0,\"queue_us\":0,\"connect_attempts\":0,\"connect_us\":null,"
            "\"duration_us\":0,\"bytes_from_client\":0,\"bytes_from_backend\":0,"
            "\"close\":\"no_backend\",\"event\":\"close\"}\n");
  // An address of another family (a Unix listener's peer) is unknown too.
  sockaddr_un unix_peer{};
  unix_peer.sun_family = AF_UNIX;
  r.client = reinterpret_cast<const sockaddr*>(&unix_peer);
  EXPECT_NE(json_line(r).find("\"client\":null,"), std::string::npos) << json_line(r);
}

TEST(AccessJson, FormatPicksTheWriter) {
  FullRecord f;
  std::string logfmt, json;
  append_access(AccessLogFormat::kLogfmt, f.r, &logfmt);
  append_access(AccessLogFormat::kJson, f.r, &json);
  std::string expected_logfmt, expected_json;
  append_access_line(f.r, &expected_logfmt);
  append_access_json(f.r, &expected_json);
  EXPECT_EQ(logfmt, expected_logfmt);
  EXPECT_EQ(json, expected_json);
}

TEST(AccessJson, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(json_backend("unix:/run/a\"b\\c/d e\n\t\r\x01\x1f\x7f~"),
            "\"unix:/run/a\\\"b\\\\c/d e\\u000a\\u0009\\u000d\\u0001\\u001f\\u007f~\"");
  EXPECT_EQ(json_backend(std::string("a\0b", 3)), "\"a\\u0000b\"");
  EXPECT_EQ(json_backend(""), "\"\"");
  // Every control character, alone.
  for (int c = 0; c <= 0x7f; ++c) {
    if (c >= 0x20 && c != 0x7f) continue;
    char expected[16];
    snprintf(expected, sizeof(expected), "\"\\u%04x\"", c);
    EXPECT_EQ(json_backend(std::string(1, static_cast<char>(c))), expected) << "byte " << c;
  }
  // Every other ASCII character is itself, but for '"' and '\'.
  for (int c = 0x20; c < 0x7f; ++c) {
    const std::string one(1, static_cast<char>(c));
    const std::string expected = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : one;
    EXPECT_EQ(json_backend(one), "\"" + expected + "\"") << "byte " << c;
  }
  // The close reason goes through the same escaping.
  AccessRecord r;
  r.close_reason = "a\"b";
  EXPECT_NE(json_line(r).find(",\"close\":\"a\\\"b\","), std::string::npos) << json_line(r);
}

TEST(AccessJson, KeepsUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(json_backend("unix:/srv/caf\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x98\x80"),
            "\"unix:/srv/caf\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x98\x80\"");  // é € 😀 as written
  // U+FFFF and U+10FFFF, the last of 3 and 4 bytes.
  EXPECT_EQ(json_backend("\xef\xbf\xbf\xf4\x8f\xbf\xbf"), "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"");
  const struct {
    std::string in, out;
  } bad[] = {
      {"a\xff" "b", "a\\ufffdb"},                         // never valid
      {"\x80", "\\ufffd"},                                // a lone continuation byte
      {"x\xc3", "x\\ufffd"},                              // cut short at the end
      {"\xc3(", "\\ufffd("},                              // cut short by ASCII
      {"\xc0\xaf", "\\ufffd\\ufffd"},                     // overlong '/'
      {"\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd"},          // overlong, 3 bytes
      {"\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd"},          // a UTF-16 surrogate
      {"\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"},  // above U+10FFFF
      {"\xf8\x88\x80\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd"},  // 5-byte form
  };
  for (const auto& b : bad) EXPECT_EQ(json_backend(b.in), "\"" + b.out + "\"") << b.out;
}

// A strict reader for the one shape append_access_json writes: a flat object of strings,
// integers and nulls on one line. Each value is kept as it decodes: a string's text, an
// integer's digits, or "null"; a string is prefixed with '"' to tell it from the others.
class FlatJson {
 public:
  static bool parse(const std::string& line, std::vector<std::pair<std::string, std::string>>* out,
                    std::string* error) {
    FlatJson p(line);
    if (!p.object(out)) {
      *error = p.error_ + " at byte " + std::to_string(p.pos_) + " of " + line;
      return false;
    }
    return true;
  }

 private:
  explicit FlatJson(const std::string& s) : s_(s) {}

  bool fail(const std::string& why) {
    error_ = why;
    return false;
  }
  bool eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return fail(std::string("expected '") + c + "'");
  }
  bool object(std::vector<std::pair<std::string, std::string>>* out) {
    if (!eat('{')) return false;
    for (bool first = true; pos_ < s_.size() && s_[pos_] != '}'; first = false) {
      if (!first && !eat(',')) return false;
      std::string key, value;
      if (!string(&key) || !eat(':')) return false;
      if (pos_ < s_.size() && s_[pos_] == '"') {
        if (!string(&value)) return false;
        value.insert(0, "\"");
      } else if (s_.compare(pos_, 4, "null") == 0) {
        value = "null";
        pos_ += 4;
      } else if (!integer(&value)) {
        return false;
      }
      out->emplace_back(key, value);
    }
    if (!eat('}') || !eat('\n')) return false;
    return pos_ == s_.size() ? true : fail("bytes after the line");
  }
  bool integer(std::string* out) {
    const size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    if (pos_ >= s_.size() || !isdigit(static_cast<unsigned char>(s_[pos_]))) return fail("expected a value");
    if (s_[pos_] == '0' && pos_ + 1 < s_.size() && isdigit(static_cast<unsigned char>(s_[pos_ + 1]))) {
      return fail("a leading zero");
    }
    while (pos_ < s_.size() && isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    *out = s_.substr(start, pos_ - start);
    return true;
  }
  bool string(std::string* out) {
    if (!eat('"')) return false;
    while (pos_ < s_.size()) {
      const unsigned char c = static_cast<unsigned char>(s_[pos_++]);
      if (c == '"') return true;
      if (c < 0x20) return fail("a raw control character in a string");
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        continue;
      }
      if (pos_ >= s_.size()) break;
      const char e = s_[pos_++];
      switch (e) {
        case '"': case '\\': case '/': out->push_back(e); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          if (pos_ + 4 > s_.size()) return fail("a short \\u escape");
          const std::string hex = s_.substr(pos_, 4);
          if (hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
            return fail("a bad \\u escape");
          }
          pos_ += 4;
          const unsigned cp = static_cast<unsigned>(std::stoul(hex, nullptr, 16));
          if (cp >= 0xD800 && cp <= 0xDFFF) return fail("a surrogate escape");  // never written
          if (cp < 0x80) {
            out->push_back(static_cast<char>(cp));
          } else if (cp < 0x800) {
            out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
            out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
          } else {
            out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
            out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
          }
          break;
        }
        default: return fail("an unknown escape");
      }
    }
    return fail("an unterminated string");
  }

  const std::string& s_;
  size_t pos_ = 0;
  std::string error_;
};

TEST(AccessJson, RoundTripsEveryValue) {
  FullRecord f;
  std::string every_byte;  // every ASCII byte, and UTF-8 beyond it
  for (int c = 0; c < 0x80; ++c) every_byte.push_back(static_cast<char>(c));
  every_byte += "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
  f.backend = every_byte;
  f.sni = every_byte;
  f.r.start_unix_us = 4102444799999999;  // 2099-12-31T23:59:59.999999Z
  f.r.worker = 4294967295u;
  f.r.queue_us = 9223372036854775807;
  f.r.connect_attempts = 7;
  f.r.connect_us = 0;
  f.r.duration_us = 86'400'000'000;
  f.r.bytes_from_client = 18446744073709551615ULL;
  f.r.bytes_from_backend = 0;
  f.r.close_reason = "max_duration";
  std::vector<std::pair<std::string, std::string>> fields;
  std::string error;
  ASSERT_TRUE(FlatJson::parse(json_line(f.r), &fields, &error)) << error;
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"time", "\"2099-12-31T23:59:59.999999Z"},
      {"client", "\"192.0.2.7:51234"},
      {"listener", "\"[2001:db8::1]:443"},
      {"listener_name", "\"web"},
      {"cluster", "\"app"},
      {"sni", "\"" + every_byte},
      {"backend", "\"" + every_byte},
      {"worker", "4294967295"},
      {"queue_us", "9223372036854775807"},
      {"connect_attempts", "7"},
      {"connect_us", "0"},
      {"duration_us", "86400000000"},
      {"bytes_from_client", "18446744073709551615"},
      {"bytes_from_backend", "0"},
      {"close", "\"max_duration"},
      {"event", "\"close"},
  };
  EXPECT_EQ(fields, expected);

  // Unknown values read back as null, the rest as numbers.
  AccessRecord unknown;
  unknown.close_reason = "connect_failed";
  fields.clear();
  ASSERT_TRUE(FlatJson::parse(json_line(unknown), &fields, &error)) << error;
  ASSERT_EQ(fields.size(), 16u);
  EXPECT_EQ(fields[1], std::make_pair(std::string("client"), std::string("null")));
  EXPECT_EQ(fields[2], std::make_pair(std::string("listener"), std::string("null")));
  EXPECT_EQ(fields[3], std::make_pair(std::string("listener_name"), std::string("null")));
  EXPECT_EQ(fields[4], std::make_pair(std::string("cluster"), std::string("null")));
  EXPECT_EQ(fields[5], std::make_pair(std::string("sni"), std::string("null")));
  EXPECT_EQ(fields[6], std::make_pair(std::string("backend"), std::string("null")));
  EXPECT_EQ(fields[10], std::make_pair(std::string("connect_us"), std::string("null")));
  EXPECT_EQ(fields[7], std::make_pair(std::string("worker"), std::string("0")));
}

// The same lines through a real, strict JSON parser (Python's json module): each is one object
// with the sixteen fields, of the right types, and the backend's text comes back as written
// (bytes that are not UTF-8 as U+FFFD).
TEST(AccessJson, Python3ReadsEveryLine) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.path() + "/access.json";
  FullRecord f;
  std::string lines, every_byte;
  for (int c = 0; c < 0x80; ++c) every_byte.push_back(static_cast<char>(c));
  append_access_json(f.r, &lines);
  AccessRecord unknown;
  unknown.close_reason = "no_backend";
  append_access_json(unknown, &lines);
  f.backend = every_byte + "\xc3\xa9\xff\xf0\x9f\x98\x80";
  append_access_json(f.r, &lines);
  AccessRecord update;  // an interim record (access-log-interval)
  update.update = true;
  update.close_reason = nullptr;
  append_access_json(update, &lines);
  std::ofstream(path) << lines;
  const char* script = R"PY(
import json, sys
keys = ["time", "client", "listener", "listener_name", "cluster", "sni", "backend", "worker", "queue_us", "connect_attempts",
        "connect_us", "duration_us", "bytes_from_client", "bytes_from_backend", "close", "event"]
numbers = ["worker", "queue_us", "connect_attempts", "duration_us", "bytes_from_client",
           "bytes_from_backend"]
for line in open(sys.argv[1], encoding="utf-8"):
    o = json.loads(line)
    assert list(o) == keys, list(o)
    for k in numbers:
        assert type(o[k]) is int, (k, o[k])
    assert o["connect_us"] is None or type(o["connect_us"]) is int
    for k in ["client", "listener", "listener_name", "cluster", "sni", "backend"]:
        assert o[k] is None or type(o[k]) is str, (k, o[k])
    assert o["event"] in ("close", "update") and (o["close"] is None) == (o["event"] == "update"), line
    print(o["time"], o["client"], o["connect_us"], o["bytes_from_backend"], o["close"], o["event"],
          "-" if o["backend"] is None else " ".join("%x" % ord(c) for c in o["backend"]))
)PY";
  const RunResult r = run_command({"python3", "-c", script, path});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string every_code_point;
  for (int c = 0; c < 0x80; ++c) every_code_point += (c == 0 ? "" : " ") + [c] {
    char hex[8];
    snprintf(hex, sizeof(hex), "%x", c);
    return std::string(hex);
  }();
  EXPECT_EQ(r.output,
            "2026-11-22T05:38:10.123456Z 192.0.2.7:51234 312 4567890123 client_eof close "
            "31 30 2e 30 2e 30 2e 35 3a 38 30\n"
            "1970-01-01T00:00:00.000000Z None None 0 no_backend close -\n"
            "2026-11-22T05:38:10.123456Z 192.0.2.7:51234 312 4567890123 client_eof close " +
                every_code_point + " e9 fffd 1f600\n"
            "1970-01-01T00:00:00.000000Z None None 0 None update -\n");
}

// AccessLog::open; a failure fails the test with its error (and gives null).
std::unique_ptr<AccessLog> open_log(const std::string& path, metrics::Registry* stats,
                                    size_t max_pending_bytes = AccessLog::kDefaultMaxPendingBytes) {
  StatusOr<std::unique_ptr<AccessLog>> log = AccessLog::open(path, stats, max_pending_bytes);
  if (!log.ok()) {
    ADD_FAILURE() << log.status().message();
    return nullptr;
  }
  return std::move(log.value());
}

TEST(AccessLog, WritesWhatWasSubmittedAndCountsIt) {
  TempDir dir;
  const std::string path = dir.path() + "/access.log";
  balancer::BackendRegistry backends;
  metrics::Registry stats(1, &backends);
  {
    auto log = open_log(path, &stats);
    ASSERT_NE(log, nullptr);
    std::string batch = "a\nb\n";
    EXPECT_TRUE(log->submit(&batch, 2));
    EXPECT_TRUE(batch.empty());
    batch = "c\n";
    EXPECT_TRUE(log->submit(&batch, 1));
  }  // the destructor writes everything handed over
  EXPECT_EQ(read_file(path), "a\nb\nc\n");
  EXPECT_EQ(stats.access_log_lines.get(), 3u);
  EXPECT_EQ(stats.access_log_dropped_lines.get(), 0u);
}

TEST(AccessLog, ReopenFollowsLogRotation) {
  TempDir dir;
  const std::string path = dir.path() + "/access.log";
  auto log = open_log(path, nullptr);
  ASSERT_NE(log, nullptr);
  std::string batch = "before\n";
  log->submit(&batch, 1);
  // logrotate: move the file, then tell ringlb (SIGHUP). Lines wait until the rename is seen.
  for (int i = 0; i < 250 && read_file(path).empty(); ++i) usleep(20'000);
  ASSERT_EQ(std::rename(path.c_str(), (path + ".1").c_str()), 0);
  log->reopen();
  batch = "after\n";
  log->submit(&batch, 1);
  log.reset();
  EXPECT_EQ(read_file(path + ".1"), "before\n");
  EXPECT_EQ(read_file(path), "after\n");
}

TEST(AccessLog, DropsAndCountsWhenTheWriterIsTooFarBehind) {
  TempDir dir;
  const std::string path = dir.path() + "/fifo";
  // A FIFO nobody reads from blocks the writer in write() once the pipe is full: a stalled disk.
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  const int reader = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);  // so the writer's open succeeds
  ASSERT_GE(reader, 0);
  balancer::BackendRegistry backends;
  metrics::Registry stats(1, &backends);
  auto log = open_log(path, &stats, /*max_pending_bytes=*/4096);
  ASSERT_NE(log, nullptr);
  const std::string line(1000, 'x');
  uint64_t taken = 0, dropped = 0;
  for (int i = 0; i < 200; ++i) {  // 200 KB against a 64 KB pipe and 4 KB of backlog
    std::string batch = line;
    (log->submit(&batch, 1) ? taken : dropped) += 1;
  }
  EXPECT_GT(dropped, 0u);
  EXPECT_EQ(stats.access_log_dropped_lines.get(), dropped);
  // Drain the pipe so the writer finishes, then every line taken arrives whole.
  std::string got;
  std::thread drain([&] {
    char buf[65536];
    for (;;) {
      const ssize_t n = read(reader, buf, sizeof(buf));
      if (n > 0) got.append(buf, static_cast<size_t>(n));
      if (n == 0) break;  // the writer closed its end
      if (n < 0) usleep(1000);
    }
  });
  log.reset();
  drain.join();
  close(reader);
  EXPECT_EQ(got.size(), taken * line.size());
  EXPECT_EQ(stats.access_log_lines.get(), taken);
}

}  // namespace
}  // namespace ringlb

namespace ringlb {
namespace {

// The JSON line says what the logfmt line says, field for field, for the same connection:
// python3 reads both ("-" is null, quoted logfmt values use JSON escapes) and compares them.
TEST(AccessJson, SaysWhatTheLogfmtLineSays) {
  sockaddr_in client{};
  client.sin_family = AF_INET;
  client.sin_port = htons(40000);
  inet_pton(AF_INET, "198.51.100.9", &client.sin_addr);
  const std::string backend = "unix:/run/x y\"z", listener_name = "front", cluster = "c-1",
                    sni = "a.example.com", odd_name = "has space";
  std::vector<AccessRecord> records(3);
  records[0].start_unix_us = 1795325890123456;
  records[0].client = reinterpret_cast<const sockaddr*>(&client);
  records[0].backend = &backend;
  records[0].listener_name = &listener_name;
  records[0].cluster = &cluster;
  records[0].sni = &sni;
  records[0].worker = 3;
  records[0].connect_attempts = 2;
  records[0].connect_us = 77;
  records[0].duration_us = 5000;
  records[0].bytes_from_client = 10;
  records[0].bytes_from_backend = 20;
  records[0].close_reason = "backend_eof";
  records[1].close_reason = "no_backend";  // every optional field unknown
  records[2] = records[0];
  records[2].listener_name = &odd_name;
  records[2].sni = nullptr;
  TempDir dir;
  const std::string logfmt_path = dir.path() + "/a.log", json_path = dir.path() + "/a.json";
  std::string logfmt, json;
  for (const AccessRecord& r : records) {
    append_access_line(r, &logfmt);
    append_access_json(r, &json);
  }
  std::ofstream(logfmt_path) << logfmt;
  std::ofstream(json_path) << json;
  const char* script = R"PY(
import json, re, sys
def logfmt(line):
    time, rest = line.rstrip("\n").split(" ", 1)
    out = {"time": time}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', rest):
        k, v = m.group(1), m.group(2)
        out[k] = None if v == "-" else json.loads(v) if v.startswith('"') else int(v) if v.isdigit() else v
    return out
n = 0
for a, b in zip(open(sys.argv[1]), open(sys.argv[2])):
    la, jb = logfmt(a), json.loads(b)
    assert list(la) == list(jb), (list(la), list(jb))
    assert la == jb, (la, jb)
    n += 1
print(n)
)PY";
  const RunResult r = run_command({"python3", "-c", script, logfmt_path, json_path});
  EXPECT_EQ(r.exit_code, 0) << r.output << "\n" << logfmt << json;
  EXPECT_EQ(r.output, "3\n") << logfmt << json;
}

}  // namespace
}  // namespace ringlb
