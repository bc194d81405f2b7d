// The metrics listener's HTTP side: CivetWeb (Debian's libcivetweb), which prometheus-cpp's
// Exposer wraps but keeps closed to other handlers. Here ringlb owns the server and routes exact
// paths to its own handlers (/metrics, the status page, its JSON API). A path no handler owns is
// 404; a method other than GET or HEAD is 405; a body over kMaxBody is refused with 500, so no
// answer can grow without bound.
//
// CivetWeb gives each connection one of its threads from accept until the connection closes: a
// connection that sends nothing holds a thread. So there are threads to spare beside the few
// requests that come at once (a Prometheus pair, a status page or two, a person with curl), a
// request must arrive whole within kRequestTimeoutMs (a thread held by a silent or slow
// connection is back by then), and keep-alive is off (an idle kept-alive connection would hold a
// thread between scrapes; a new connection per request costs nothing at these rates). Many more
// connections than threads can still delay a request by up to the timeout: the metrics address
// belongs on a trusted network (the default is loopback).
#pragma once

#include <sys/socket.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "server/base/error.h"

class CivetServer;

namespace ringlb::metrics {

struct HttpRequest {
  std::string path;   // without the query
  std::string query;  // after '?', "" if none
  bool accepts_gzip = false;
  // The value of `name` in the query ("limit=10&offset=20"), or null when it is absent.
  const std::string* param(const std::string& name) const;
  std::map<std::string, std::string> params;  // parsed from `query`
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // Sent after Content-Length (Cache-Control, Allow): none for /metrics, whose answer stays
  // byte for byte what prometheus-cpp's Exposer sent.
  std::vector<std::pair<std::string, std::string>> headers;
  bool gzipped = false;  // the body is gzip (the handler compressed it: the client accepts it)
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

class HttpServer {
 public:
  static constexpr int kThreads = 8;
  static constexpr int kRequestTimeoutMs = 5000;
  static constexpr size_t kMaxBody = 16 << 20;

  // `bind` as CivetWeb's listening_ports takes it; `bind_addr` the same address in binary form
  // (used to wake the server when it stops).
  static std::unique_ptr<HttpServer> start(const std::string& bind, const sockaddr* bind_addr, socklen_t bind_len,
                                           Status* error);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Serves `path` (exactly) with `handler`, from now on. Handlers run on CivetWeb's threads,
  // several at once.
  void route(const std::string& path, HttpHandler handler);
  int port() const;

  // Answers one request (the CivetWeb handler's body; public for the handler class only).
  void serve(void* connection);

 private:
  HttpServer() = default;

  class Dispatch;
  std::unique_ptr<Dispatch> dispatch_;  // declared before server_: it outlives the server
  std::unique_ptr<CivetServer> server_;
  mutable std::mutex routes_mu_;
  std::map<std::string, HttpHandler> routes_;
  sockaddr_storage bind_addr_{};
  socklen_t bind_len_ = 0;
};

// gzip of `input` (zlib, with the Exposer's settings for /metrics); empty on failure.
std::string gzip(const std::string& input);

}  // namespace ringlb::metrics
