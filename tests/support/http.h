// A plain HTTP/1.0 client for the metrics listener's routes (/metrics, the status page and its
// JSON API): one request per connection, the whole answer read.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>

namespace ringlb::testing {

struct HttpReply {
  int status = 0;  // 0: no answer
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

HttpReply http_request(uint16_t port, const std::string& method, const std::string& path,
                       const std::string& extra_headers = "");

// GET `path` and parse the body as JSON; a discarded value (is_discarded()) when it is not.
nlohmann::json get_json(uint16_t port, const std::string& path, int* status = nullptr);

// The first line of `output` that starts with '{', parsed (ctl --json prints its object on
// stdout, and run_command mixes in stderr's log lines).
nlohmann::json first_object(const std::string& output);

}  // namespace ringlb::testing
