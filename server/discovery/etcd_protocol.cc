#include "server/discovery/etcd_protocol.h"

#include <cstring>

#include <nlohmann/json.hpp>

namespace ringlb::discovery::etcd {
namespace {

using nlohmann::json;

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// grpc-gateway writes int64 as a string; accept a number too.
bool get_int64(const json& j, const char* name, int64_t* out) {
  auto it = j.find(name);
  if (it == j.end()) return true;  // left out: the default, 0
  try {
    if (it->is_string()) {
      *out = std::stoll(it->get<std::string>());
      return true;
    }
    if (it->is_number_integer()) {
      *out = it->get<int64_t>();
      return true;
    }
  } catch (const std::exception&) {
  }
  return false;
}

bool get_bytes(const json& j, const char* name, std::string* out) {
  auto it = j.find(name);
  if (it == j.end()) {
    out->clear();
    return true;
  }
  return it->is_string() && base64_decode(it->get<std::string>(), out);
}

bool parse_kv(const json& j, KeyValue* kv) {
  return j.is_object() && get_bytes(j, "key", &kv->key) && get_bytes(j, "value", &kv->value) &&
         get_int64(j, "mod_revision", &kv->mod_revision);
}

// nlohmann's parse, without exceptions escaping (the gateway is a network peer).
bool parse_json(std::string_view text, json* out, std::string* why) {
  *out = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded() || !out->is_object()) {
    *why = "not a JSON object";
    return false;
  }
  return true;
}

std::string error_text(const json& e) {
  if (e.is_object()) {
    if (auto m = e.find("message"); m != e.end() && m->is_string()) return m->get<std::string>();
  }
  return e.dump();
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) n |= static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

bool base64_decode(std::string_view text, std::string* out) {
  out->clear();
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return false;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const char* at = c == '\0' ? nullptr : strchr(kAlphabet, c);
    if (at == nullptr) return false;
    acc = (acc << 6) | static_cast<uint32_t>(at - kAlphabet);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

std::string prefix_range_end(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    if (static_cast<uint8_t>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // etcd's "every key from the start"
}

std::string range_request(const std::string& prefix) {
  return json{{"key", base64_encode(prefix)}, {"range_end", base64_encode(prefix_range_end(prefix))}}.dump();
}

std::string watch_request(const std::string& prefix, int64_t start_revision) {
  return json{{"create_request",
               {{"key", base64_encode(prefix)},
                {"range_end", base64_encode(prefix_range_end(prefix))},
                {"start_revision", std::to_string(start_revision)}}}}
      .dump();
}

std::string authenticate_request(const std::string& user, const std::string& password) {
  return json{{"name", user}, {"password", password}}.dump();
}

bool parse_range_response(std::string_view body, int64_t* revision, std::vector<KeyValue>* kvs,
                          std::string* why) {
  json j;
  if (!parse_json(body, &j, why)) return false;
  if (auto e = j.find("error"); e != j.end()) {
    *why = error_text(*e);
    return false;
  }
  auto header = j.find("header");
  *revision = 0;
  if (header == j.end() || !get_int64(*header, "revision", revision) || *revision <= 0) {
    *why = "no header.revision";
    return false;
  }
  kvs->clear();
  if (auto list = j.find("kvs"); list != j.end()) {
    if (!list->is_array()) {
      *why = "kvs is not an array";
      return false;
    }
    for (const json& item : *list) {
      KeyValue kv;
      if (!parse_kv(item, &kv)) {
        *why = "a kvs entry is not {key, value} in base64";
        return false;
      }
      kvs->push_back(std::move(kv));
    }
  }
  return true;
}

bool parse_authenticate_response(std::string_view body, std::string* token, std::string* why) {
  json j;
  if (!parse_json(body, &j, why)) return false;
  if (auto e = j.find("error"); e != j.end()) {
    *why = error_text(*e);
    return false;
  }
  auto t = j.find("token");
  if (t == j.end() || !t->is_string() || t->get<std::string>().empty()) {
    *why = "no token";
    return false;
  }
  *token = t->get<std::string>();
  return true;
}

bool parse_watch_message(std::string_view line, WatchMessage* out, std::string* why) {
  *out = WatchMessage{};
  json j;
  if (!parse_json(line, &j, why)) return false;
  if (auto e = j.find("error"); e != j.end()) {
    out->error = error_text(*e);
    return true;
  }
  auto r = j.find("result");
  if (r == j.end() || !r->is_object()) {
    *why = "no result";
    return false;
  }
  out->created = r->value("created", false);
  out->canceled = r->value("canceled", false);
  if (!get_int64(*r, "compact_revision", &out->compact_revision)) {
    *why = "compact_revision is not a number";
    return false;
  }
  if (auto reason = r->find("cancel_reason"); reason != r->end() && reason->is_string()) {
    out->cancel_reason = reason->get<std::string>();
  }
  if (auto events = r->find("events"); events != r->end()) {
    if (!events->is_array()) {
      *why = "events is not an array";
      return false;
    }
    for (const json& e : *events) {
      WatchEvent event;
      const std::string type = e.is_object() ? e.value("type", std::string("PUT")) : "";
      if (type != "PUT" && type != "DELETE") {
        *why = "an event of type '" + type + "'";
        return false;
      }
      event.type = type == "PUT" ? WatchEvent::Type::kPut : WatchEvent::Type::kDelete;
      auto kv = e.find("kv");
      if (kv == e.end() || !parse_kv(*kv, &event.kv)) {
        *why = "an event without a kv";
        return false;
      }
      out->events.push_back(std::move(event));
    }
  }
  return true;
}

}  // namespace ringlb::discovery::etcd
