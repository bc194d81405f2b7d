#include "tests/support/http.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "tests/support/net.h"

namespace ringlb::testing {

HttpReply http_request(uint16_t port, const std::string& method, const std::string& path,
                       const std::string& extra_headers) {
  HttpReply reply;
  Fd fd = connect_loopback(port);
  if (!fd) return reply;
  const std::string req = method + " " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n" + extra_headers + "\r\n";
  if (!write_all(fd.get(), req.data(), req.size())) return reply;
  const std::string resp = read_to_eof(fd.get(), 10000);
  const size_t end = resp.find("\r\n\r\n");
  if (end == std::string::npos || resp.compare(0, 9, "HTTP/1.1 ") != 0) return reply;
  reply.status = std::stoi(resp.substr(9, 3));
  std::istringstream lines(resp.substr(0, end));
  std::string line;
  std::getline(lines, line);  // the status line
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    reply.headers[name] = line.substr(std::min(line.size(), colon + 2));
  }
  reply.body = resp.substr(end + 4);
  return reply;
}

nlohmann::json get_json(uint16_t port, const std::string& path, int* status) {
  const HttpReply r = http_request(port, "GET", path);
  if (status != nullptr) *status = r.status;
  return nlohmann::json::parse(r.body, nullptr, false);
}

nlohmann::json first_object(const std::string& output) {
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line[0] == '{') return nlohmann::json::parse(line, nullptr, false);
  }
  return nlohmann::json::parse("", nullptr, false);
}

}  // namespace ringlb::testing
