#include "server/status/service.h"

#include <cstdlib>

#include "server/status/connections_json.h"
#include "server/status/status_json.h"

namespace ringlb::status {
namespace {

metrics::HttpResponse json_response(int status, const Json& body, const metrics::HttpRequest& request) {
  metrics::HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = dump(body) + "\n";
  r.headers.push_back({"Cache-Control", "no-store"});
  if (request.accepts_gzip && r.body.size() > 1024) {
    if (std::string compressed = metrics::gzip(r.body); !compressed.empty()) {
      r.body = std::move(compressed);
      r.gzipped = true;
    }
  }
  return r;
}

metrics::HttpResponse json_error(int status, const std::string& message, const metrics::HttpRequest& request) {
  Json e;
  e["error"] = message;
  return json_response(status, e, request);
}

// A query number: digits only, at most `max`. False when present and not that.
bool query_number(const metrics::HttpRequest& request, const char* name, size_t max, size_t* out) {
  const std::string* text = request.param(name);
  if (text == nullptr) return true;
  if (text->empty() || text->size() > 9) return false;
  for (char ch : *text) {
    if (ch < '0' || ch > '9') return false;
  }
  const size_t n = std::stoul(*text);
  if (n > max) return false;
  *out = n;
  return true;
}

// Test-only (environment): RINGLB_TEST_STATUS_TICK_MS=N samples every N ms instead of every
// second, so a test sees the history fill (a sample per 10 ticks) in seconds, not minutes.
std::chrono::milliseconds tick_length() {
  const char* text = getenv("RINGLB_TEST_STATUS_TICK_MS");
  const long ms = text != nullptr ? strtol(text, nullptr, 10) : 0;
  return std::chrono::milliseconds(ms >= 10 && ms <= 1000 ? ms : 1000);
}

}  // namespace

Service::Service(SharedState& shared, metrics::Exporter& exporter, std::string version)
    : shared_(shared), version_(std::move(version)), history_(shared) {
  history_.start(tick_length());
  exporter.route("/", [this](const metrics::HttpRequest& r) { return page(r); });
  exporter.route("/api/v1/status", [this](const metrics::HttpRequest& r) { return status(r); });
  exporter.route("/api/v1/connections", [this](const metrics::HttpRequest& r) { return connections(r); });
}

Service::~Service() { history_.stop(); }

metrics::HttpResponse Service::page(const metrics::HttpRequest&) const {
  metrics::HttpResponse r;
  r.content_type = "text/html; charset=utf-8";
  r.body = kPageHtml;
  // Nothing but this page and its own API: no external script, style, font or image can load.
  r.headers.push_back({"Content-Security-Policy",
                       "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                       "connect-src 'self'; img-src data:"});
  r.headers.push_back({"Cache-Control", "no-store"});
  return r;
}

metrics::HttpResponse Service::status(const metrics::HttpRequest& request) const {
  const std::string* history = request.param("history");
  if (history != nullptr && *history != "0" && *history != "1") {
    return json_error(400, "history must be 0 or 1", request);
  }
  const bool with_history = history == nullptr || *history == "1";
  return json_response(200, status_json(shared_, version_, with_history ? &history_ : nullptr), request);
}

metrics::HttpResponse Service::connections(const metrics::HttpRequest& request) const {
  size_t limit = kDefaultLimit, offset = 0;
  if (!query_number(request, "limit", kMaxLimit, &limit) || limit == 0) {
    return json_error(400, "limit must be 1 to " + std::to_string(kMaxLimit), request);
  }
  if (!query_number(request, "offset", 100'000'000, &offset)) {
    return json_error(400, "offset must be a number from 0", request);
  }
  std::optional<std::string> text = shared_.diagnostics_requests.fetch(kFresh, kRoundTimeout);
  if (!text) return json_error(503, "the workers did not answer in time; try again", request);
  return json_response(200, connections_page(parse_connections(*text), offset, limit), request);
}

}  // namespace ringlb::status
