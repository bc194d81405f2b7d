// etcd v3's JSON gateway, as pure functions: the request bodies ringlb sends (/v3/kv/range,
// /v3/watch, /v3/auth/authenticate) and the responses it reads. The gateway is grpc-gateway over
// etcd's gRPC API: keys and values are base64 (proto bytes), int64s are JSON strings, fields at
// their default are left out (a PUT event has no "type"), and a watch answers with one JSON object
// per line of a chunked response. No network here: unit-tested on the gateway's own texts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ringlb::discovery::etcd {

std::string base64_encode(std::string_view bytes);
// False on anything that is not standard base64 (with or without padding).
bool base64_decode(std::string_view text, std::string* out);

// The end of the key range that is every key under `prefix`: the prefix with its last byte plus
// one (etcd's clientv3.GetPrefixRangeEnd), dropping trailing 0xff bytes first.
std::string prefix_range_end(const std::string& prefix);

std::string range_request(const std::string& prefix);
// A watch of every key under `prefix` from `start_revision` (the range's revision + 1).
std::string watch_request(const std::string& prefix, int64_t start_revision);
std::string authenticate_request(const std::string& user, const std::string& password);

struct KeyValue {
  std::string key;
  std::string value;
  int64_t mod_revision = 0;
};

// A /v3/kv/range answer: the store's revision (watch from the next one) and the keys.
bool parse_range_response(std::string_view body, int64_t* revision, std::vector<KeyValue>* kvs,
                          std::string* why);
// A /v3/auth/authenticate answer: the token for the Authorization header.
bool parse_authenticate_response(std::string_view body, std::string* token, std::string* why);

struct WatchEvent {
  enum class Type { kPut, kDelete } type = Type::kPut;
  KeyValue kv;  // for a delete, the key (and the revision of the delete)
};

// One line of a /v3/watch stream.
struct WatchMessage {
  bool created = false;
  bool canceled = false;           // the server ended this watch (compaction, auth, overload)
  int64_t compact_revision = 0;    // above 0: what we asked for is compacted, so resync
  std::string cancel_reason;
  std::string error;               // {"error": ...} from the gateway (e.g. an invalid token)
  std::vector<WatchEvent> events;  // in revision order
};
bool parse_watch_message(std::string_view line, WatchMessage* out, std::string* why);

}  // namespace ringlb::discovery::etcd
