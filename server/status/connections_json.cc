#include "server/status/connections_json.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <map>
#include <string_view>
#include <utility>

namespace ringlb::status {
namespace {

constexpr std::array<std::string_view, 11> kKeys = {"worker", "conn", "side", "backend", "local", "peer",
                                                    "rtt_us", "rttvar_us", "retransmits", "bytes_acked",
                                                    "bytes_received"};
constexpr std::array<std::string_view, 5> kNumbers = {"rtt_us", "rttvar_us", "retransmits", "bytes_acked",
                                                      "bytes_received"};

// Where the value starting at `from` ends: at the next " KEY=" of a known key (a backend's name,
// a unix: path, may hold spaces), or at the end of the line.
size_t value_end(std::string_view line, size_t from) {
  size_t end = line.size();
  for (std::string_view key : kKeys) {
    const std::string marker = " " + std::string(key) + "=";
    const size_t at = line.find(marker, from);
    if (at != std::string_view::npos) end = std::min(end, at);
  }
  return end;
}

bool parse_line(std::string_view line, std::vector<std::pair<std::string, std::string>>* fields) {
  fields->clear();
  size_t at = 0;
  while (at < line.size()) {
    const size_t eq = line.find('=', at);
    if (eq == std::string_view::npos) return false;
    const std::string_view key = line.substr(at, eq - at);
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) return false;
    const size_t end = value_end(line, eq + 1);
    fields->emplace_back(std::string(key), std::string(line.substr(eq + 1, end - eq - 1)));
    at = end + 1;
  }
  return !fields->empty();
}

bool to_number(const std::string& text, uint64_t* out) {
  if (text.empty() || text.size() > 20) return false;
  char* end = nullptr;
  *out = strtoull(text.c_str(), &end, 10);
  return *end == '\0';
}

}  // namespace

Json parse_connections(const std::string& diagnostics) {
  Json out = Json::array();
  std::map<std::pair<uint64_t, uint64_t>, size_t> index;  // (worker, id) -> position in out
  std::vector<std::pair<std::string, std::string>> fields;
  for (size_t at = 0; at < diagnostics.size();) {
    const size_t end = std::min(diagnostics.find('\n', at), diagnostics.size());
    const std::string_view line(diagnostics.data() + at, end - at);
    at = end + 1;
    if (!parse_line(line, &fields)) continue;
    uint64_t worker = 0, id = 0;
    std::string side;
    Json socket;
    bool have_worker = false, have_id = false;
    for (const auto& [key, value] : fields) {
      uint64_t n = 0;
      if (key == "worker") {
        have_worker = to_number(value, &worker);
      } else if (key == "conn") {
        have_id = to_number(value, &id);
      } else if (key == "side") {
        side = value;
      } else if (key == "backend") {
        socket["name"] = value;
      } else if (std::find(kNumbers.begin(), kNumbers.end(), key) != kNumbers.end()) {
        socket[key] = to_number(value, &n) ? Json(n) : Json(nullptr);
      } else {
        socket[key] = value;
      }
    }
    if (!have_worker || !have_id || (side != "client" && side != "backend")) continue;
    auto [it, added] = index.try_emplace({worker, id}, out.size());
    if (added) {
      Json c;
      c["worker"] = worker;
      c["id"] = id;
      c["client"] = nullptr;
      c["backend"] = nullptr;
      out.push_back(std::move(c));
    }
    out[it->second][side] = std::move(socket);
  }
  return out;
}

Json connections_page(const Json& connections, size_t offset, size_t limit) {
  Json page;
  page["total"] = connections.size();
  page["offset"] = offset;
  page["limit"] = limit;
  Json list = Json::array();
  for (size_t i = offset; i < connections.size() && i - offset < limit; ++i) list.push_back(connections[i]);
  page["connections"] = std::move(list);
  return page;
}

}  // namespace ringlb::status
