// The status page and its JSON API on the metrics listener (metrics-listen), beside /metrics:
//   /                    the page (server/status/page.html): read-only, no external assets
//   /api/v1/status       everything the page shows (status_json.h), ?history=0 leaves the
//                        15-minute series out
//   /api/v1/connections  what `ctl connections` lists, ?limit=N (1 to kMaxLimit, default
//                        kDefaultLimit) and ?offset=N; asked of the acceptor through
//                        SharedState::diagnostics_requests (server/runtime/diagnostics_requests.h)
// and the History thread that samples every second for the page's charts.
#pragma once

#include <chrono>
#include <string>

#include "metrics/exporter.h"
#include "server/runtime/shared_state.h"
#include "server/status/history.h"

namespace ringlb::status {

class Service {
 public:
  static constexpr size_t kDefaultLimit = 100;
  static constexpr size_t kMaxLimit = 1000;
  // A round of diagnostics is reused this long (a page refreshing every 2 s, many pages).
  static constexpr std::chrono::milliseconds kFresh{1000};
  // How long a request waits for a round before it is answered 503.
  static constexpr std::chrono::milliseconds kRoundTimeout{3000};

  // Adds the routes to `exporter` and starts sampling. Both outlive the service's requests:
  // the exporter (which stops serving first) is destroyed before `shared`.
  Service(SharedState& shared, metrics::Exporter& exporter, std::string version);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  metrics::HttpResponse page(const metrics::HttpRequest& request) const;
  metrics::HttpResponse status(const metrics::HttpRequest& request) const;
  metrics::HttpResponse connections(const metrics::HttpRequest& request) const;

 private:
  SharedState& shared_;
  std::string version_;
  History history_;
};

// The page's HTML (page.html, built in by page_html.cc).
extern const char kPageHtml[];

}  // namespace ringlb::status
