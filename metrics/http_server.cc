#include "metrics/http_server.h"

#include <CivetServer.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace ringlb::metrics {
namespace {

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

HttpResponse plain(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers.push_back({"Cache-Control", "no-store"});
  return r;
}

void parse_query(const std::string& query, std::map<std::string, std::string>* out) {
  for (size_t at = 0; at < query.size();) {
    const size_t end = std::min(query.find('&', at), query.size());
    const std::string pair = query.substr(at, end - at);
    const size_t eq = pair.find('=');
    if (!pair.empty()) (*out)[pair.substr(0, eq)] = eq == std::string::npos ? "" : pair.substr(eq + 1);
    at = end + 1;
  }
}

}  // namespace

const std::string* HttpRequest::param(const std::string& name) const {
  auto it = params.find(name);
  return it == params.end() ? nullptr : &it->second;
}

std::string gzip(const std::string& input) {
  // The Exposer's settings (gzip header, default level, memory level 9).
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
  zs.avail_in = static_cast<uInt>(input.size());
  std::string out;
  int ret = Z_OK;
  do {
    constexpr size_t kRound = 32768;
    out.resize(zs.total_out + kRound);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + zs.total_out);
    zs.avail_out = kRound;
    ret = deflate(&zs, Z_FINISH);
    out.resize(zs.total_out);
  } while (ret == Z_OK);
  deflateEnd(&zs);
  return ret == Z_STREAM_END ? out : std::string();
}

// Every method CivetWeb knows comes here: the router, not CivetWeb, decides 404 and 405.
class HttpServer::Dispatch : public CivetHandler {
 public:
  explicit Dispatch(HttpServer* server) : server_(server) {}
  bool handleGet(CivetServer*, mg_connection* c) override { return serve(c); }
  bool handleHead(CivetServer*, mg_connection* c) override { return serve(c); }
  bool handlePost(CivetServer*, mg_connection* c) override { return serve(c); }
  bool handlePut(CivetServer*, mg_connection* c) override { return serve(c); }
  bool handleDelete(CivetServer*, mg_connection* c) override { return serve(c); }
  bool handleOptions(CivetServer*, mg_connection* c) override { return serve(c); }
  bool handlePatch(CivetServer*, mg_connection* c) override { return serve(c); }

 private:
  bool serve(mg_connection* c) {
    server_->serve(c);
    return true;
  }
  HttpServer* server_;
};

std::unique_ptr<HttpServer> HttpServer::start(const std::string& bind, const sockaddr* bind_addr,
                                              socklen_t bind_len, Status* error) {
  auto server = std::unique_ptr<HttpServer>(new HttpServer());
  memcpy(&server->bind_addr_, bind_addr, std::min<size_t>(bind_len, sizeof(server->bind_addr_)));
  server->bind_len_ = bind_len;
  server->dispatch_ = std::make_unique<Dispatch>(server.get());
  try {
    // CivetWeb's own option names (civetweb.h's user manual).
    server->server_ = std::make_unique<CivetServer>(std::vector<std::string>{
        "listening_ports", bind,
        "num_threads", std::to_string(kThreads),
        "request_timeout_ms", std::to_string(kRequestTimeoutMs),
        "enable_keep_alive", "no",
    });
  } catch (const std::exception&) {
    *error = Status::error("cannot serve metrics on " + bind + ": the address is in use or not available");
    return nullptr;
  }
  // "**" matches every path: unknown ones get the router's 404, not CivetWeb's file serving.
  server->server_->addHandler("**", server->dispatch_.get());
  return server;
}

void HttpServer::route(const std::string& path, HttpHandler handler) {
  std::lock_guard<std::mutex> lock(routes_mu_);
  routes_[path] = std::move(handler);
}

void HttpServer::serve(void* connection) {
  mg_connection* conn = static_cast<mg_connection*>(connection);
  const mg_request_info* info = mg_get_request_info(conn);
  const std::string method = info->request_method ? info->request_method : "";
  HttpRequest request;
  request.path = info->local_uri ? info->local_uri : "";
  request.query = info->query_string ? info->query_string : "";
  parse_query(request.query, &request.params);
  const char* encoding = mg_get_header(conn, "Accept-Encoding");
  request.accepts_gzip = encoding != nullptr && strstr(encoding, "gzip") != nullptr;

  HttpHandler handler;
  {
    std::lock_guard<std::mutex> lock(routes_mu_);
    if (auto it = routes_.find(request.path); it != routes_.end()) handler = it->second;
  }
  HttpResponse response;
  if (!handler) {
    response = plain(404, "not found: " + request.path.substr(0, 200) + "\n");
  } else if (method != "GET" && method != "HEAD") {
    response = plain(405, "method not allowed: " + method.substr(0, 20) + " (GET or HEAD)\n");
    response.headers.push_back({"Allow", "GET, HEAD"});
  } else {
    response = handler(request);
    if (response.body.size() > kMaxBody) response = plain(500, "response too large\n");
  }
  std::string body = std::move(response.body);
  // The header lines in the Exposer's order, so /metrics stays byte for byte as it was.
  std::string head = "HTTP/1.1 " + std::to_string(response.status) + " " + reason_phrase(response.status) +
                     "\r\nContent-Type: " + response.content_type + "\r\n";
  if (response.gzipped) head += "Content-Encoding: gzip\r\n";
  head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  for (const auto& [name, value] : response.headers) head += name + ": " + value + "\r\n";
  head += "\r\n";
  mg_write(conn, head.data(), head.size());
  if (method != "HEAD") mg_write(conn, body.data(), body.size());
}

int HttpServer::port() const {
  const std::vector<int> ports = server_->getListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

HttpServer::~HttpServer() {
  if (!server_) return;
  // CivetWeb's master thread polls its listener in 2-second quanta and stopping waits for it. A
  // connection wakes the poll, so knock while it stops: exit then takes milliseconds.
  sockaddr_storage target = bind_addr_;
  const uint16_t port = htons(static_cast<uint16_t>(this->port()));
  if (target.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&target);
    a->sin6_port = port;
    if (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr)) a->sin6_addr = in6addr_loopback;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&target);
    a->sin_port = port;
    if (a->sin_addr.s_addr == htonl(INADDR_ANY)) a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  std::atomic<bool> stopped{false};
  std::thread knocker([&] {
    for (int i = 0; i < 100 && !stopped.load(); ++i) {  // at most ~2 s, as without it
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      const int fd = socket(target.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (fd < 0) continue;
      connect(fd, reinterpret_cast<const sockaddr*>(&target), bind_len_);
      close(fd);
    }
  });
  server_.reset();
  stopped = true;
  knocker.join();
}

}  // namespace ringlb::metrics
