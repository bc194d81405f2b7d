// The metrics listener (metrics-listen): /metrics for Prometheus, and the routes other parts of
// ringlb add (the status page and its JSON API: server/status). The HTTP side is
// metrics/http_server.h; /metrics is what prometheus-cpp's Exposer served, byte for byte (its
// own exposer_* families first, then ringlb's, then those added with add()).
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <prometheus/summary.h>

#include <sys/socket.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "metrics/collector.h"
#include "metrics/http_server.h"
#include "metrics/stats.h"

namespace ringlb::metrics {

class Exporter {
 public:
  static constexpr int kThreads = HttpServer::kThreads;
  static constexpr int kRequestTimeoutMs = HttpServer::kRequestTimeoutMs;

  // Throws nothing: returns null and sets *error when the address cannot be served. `bind_addr`
  // is the same address in binary form (used to wake the server when it stops).
  static std::unique_ptr<Exporter> start(const std::string& bind, const sockaddr* bind_addr,
                                         socklen_t bind_len, const Registry& registry,
                                         const std::string& version, std::string* error);
  ~Exporter();

  // The port actually bound (useful with port 0).
  int port() const;
  // More families from another part of ringlb (etcd discovery), kept alive here.
  void add(std::shared_ptr<prometheus::Collectable> collectable);
  // Serves `path` with `handler` beside /metrics (server/status).
  void route(const std::string& path, HttpHandler handler) { server_->route(path, std::move(handler)); }

 private:
  Exporter();
  HttpResponse scrape(const HttpRequest& request);

  // The Exposer's own families, kept so that a scrape lists what it always did.
  std::shared_ptr<prometheus::Registry> exposer_registry_ = std::make_shared<prometheus::Registry>();
  prometheus::Counter& bytes_transferred_;
  prometheus::Counter& scrapes_;
  prometheus::Summary& latencies_;
  std::mutex collectables_mu_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::unique_ptr<HttpServer> server_;  // last: stopped first, while what it reads is alive
};

}  // namespace ringlb::metrics
