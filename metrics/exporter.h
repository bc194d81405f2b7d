// Serves ringlb's statistics at /metrics through prometheus-cpp's Exposer. Nothing is recorded
// through prometheus-cpp on the data path: the Collectable reads the per-thread stats and merges
// them into metric families when Prometheus scrapes.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>

#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

#include "metrics/stats.h"

namespace ringlb::metrics {

class Collector : public prometheus::Collectable {
 public:
  Collector(const Registry& registry, std::string version);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const Registry& registry_;
  std::string version_;
};

// The HTTP side is CivetWeb (through prometheus-cpp's Exposer), which gives each connection one
// of its threads from accept until the connection closes: a connection that sends nothing holds a
// thread. So there are threads to spare beside the few scrapes that come at once (a Prometheus
// pair, a person with curl), a request must arrive whole within kRequestTimeoutMs (a thread held
// by a silent or slow connection is back by then), and keep-alive is off (a scraper's idle
// kept-alive connection would hold a thread between scrapes; a new connection per scrape costs
// nothing at scrape intervals). Many more connections than threads can still delay a scrape by up
// to the timeout: the metrics address belongs on a trusted network (the default is loopback).
class Exporter {
 public:
  static constexpr int kThreads = 8;
  static constexpr int kRequestTimeoutMs = 5000;

  // Throws nothing: returns null and sets *error when the address cannot be served. `bind_addr`
  // is the same address in binary form (used to wake the server when it stops).
  static std::unique_ptr<Exporter> start(const std::string& bind, const sockaddr* bind_addr,
                                         socklen_t bind_len, const Registry& registry,
                                         const std::string& version, std::string* error);
  ~Exporter();

 public:
  // The port actually bound (useful with port 0).
  int port() const;
  // More families from another part of ringlb (etcd discovery), kept alive here.
  void add(std::shared_ptr<prometheus::Collectable> collectable);

 private:
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<Collector> collector_;
  std::vector<std::shared_ptr<prometheus::Collectable>> others_;
  sockaddr_storage bind_addr_{};
  socklen_t bind_len_ = 0;
};

}  // namespace ringlb::metrics
