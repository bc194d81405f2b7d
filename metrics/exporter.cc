#include "metrics/exporter.h"

#include <prometheus/text_serializer.h>

#include <chrono>

namespace ringlb::metrics {

Exporter::Exporter()
    : bytes_transferred_(prometheus::BuildCounter()
                             .Name("exposer_transferred_bytes_total")
                             .Help("Transferred bytes to metrics services")
                             .Register(*exposer_registry_)
                             .Add({})),
      scrapes_(prometheus::BuildCounter()
                   .Name("exposer_scrapes_total")
                   .Help("Number of times metrics were scraped")
                   .Register(*exposer_registry_)
                   .Add({})),
      latencies_(prometheus::BuildSummary()
                     .Name("exposer_request_latencies")
                     .Help("Latencies of serving scrape requests, in microseconds")
                     .Register(*exposer_registry_)
                     .Add({}, prometheus::Summary::Quantiles{{0.5, 0.05}, {0.9, 0.01}, {0.99, 0.001}})) {
  collectables_.push_back(exposer_registry_);
}

std::unique_ptr<Exporter> Exporter::start(const std::string& bind, const sockaddr* bind_addr,
                                          socklen_t bind_len, const Registry& registry,
                                          const std::string& version, std::string* error) {
  auto exporter = std::unique_ptr<Exporter>(new Exporter());
  exporter->collectables_.push_back(std::make_shared<Collector>(registry, version));
  Status status;
  exporter->server_ = HttpServer::start(bind, bind_addr, bind_len, &status);
  if (!exporter->server_) {
    *error = status.message();
    return nullptr;
  }
  Exporter* e = exporter.get();
  exporter->server_->route("/metrics", [e](const HttpRequest& r) { return e->scrape(r); });
  return exporter;
}

Exporter::~Exporter() { server_.reset(); }

void Exporter::add(std::shared_ptr<prometheus::Collectable> collectable) {
  std::lock_guard<std::mutex> lock(collectables_mu_);
  collectables_.push_back(std::move(collectable));
}

HttpResponse Exporter::scrape(const HttpRequest& request) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<prometheus::MetricFamily> families;
  {
    std::lock_guard<std::mutex> lock(collectables_mu_);
    for (const auto& c : collectables_) {
      std::vector<prometheus::MetricFamily> more = c->Collect();
      families.insert(families.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    }
  }
  HttpResponse response;
  response.body = prometheus::TextSerializer().Serialize(families);
  if (request.accepts_gzip) {
    if (std::string compressed = gzip(response.body); !compressed.empty()) {
      response.body = std::move(compressed);
      response.gzipped = true;
    }
  }
  // As the Exposer did: the bytes sent (compressed, when they were) and the time to serve.
  const size_t sent = response.body.size();
  latencies_.Observe(static_cast<double>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count()));
  bytes_transferred_.Increment(static_cast<double>(sent));
  scrapes_.Increment();
  return response;
}

int Exporter::port() const { return server_->port(); }

}  // namespace ringlb::metrics
