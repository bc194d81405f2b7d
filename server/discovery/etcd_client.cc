#include "server/discovery/etcd_client.h"

#include <mutex>

#include "server/discovery/etcd_protocol.h"

namespace ringlb::discovery::etcd {
namespace {

size_t append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// A request in progress stops when ringlb does (curl checks this about once a second, and on
// every chunk of data).
int progress(void* stopping, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(stopping)->load() ? 1 : 0;
}

}  // namespace

WatchStream::~WatchStream() {
  if (multi_ != nullptr && easy_) curl_multi_remove_handle(multi_, easy_.get());
}

long WatchStream::http_status() const {
  long code = 0;
  curl_easy_getinfo(easy_.get(), CURLINFO_RESPONSE_CODE, &code);
  return code;
}

size_t WatchStream::on_data(char* data, size_t size, size_t n, void* p) {
  auto* self = static_cast<WatchStream*>(p);
  self->pending_.append(data, size * n);
  // grpc-gateway ends each streamed message with a newline.
  for (size_t end; (end = self->pending_.find('\n')) != std::string::npos;) {
    std::string line = self->pending_.substr(0, end);
    self->pending_.erase(0, end + 1);
    if (!line.empty()) self->on_line_(line);
  }
  // A line longer than anything a watch sends (etcd caps a request at 1.5 MiB by default) is
  // a broken peer: end the transfer.
  return self->pending_.size() > (8u << 20) ? 0 : size * n;
}

Client::Client(EtcdConfig config, const std::atomic<bool>* stopping)
    : config_(std::move(config)), stopping_(stopping) {
  // Thread-safe in the libcurl Debian 12 ships only when nothing else initialises it at once:
  // once per process, here.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  multi_ = curl_multi_init();
}

Client::~Client() { curl_multi_cleanup(multi_); }

void Client::set_common(CURL* h, const std::string& url, curl_slist* headers, const std::string& body) {
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM for timeouts: ringlb has threads
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config_.dial_timeout.count()));
  // A watch is idle for as long as nothing changes: keepalives find a peer that vanished.
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 5L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, stopping_);
  if (!config_.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, config_.ca_file.c_str());
  if (!config_.cert_file.empty()) curl_easy_setopt(h, CURLOPT_SSLCERT, config_.cert_file.c_str());
  if (!config_.key_file.empty()) curl_easy_setopt(h, CURLOPT_SSLKEY, config_.key_file.c_str());
}

bool Client::post_once(const std::string& url, const std::string& body, std::string* response,
                       std::string* why) {
  CurlEasy h(curl_easy_init());
  CurlList headers(curl_slist_append(nullptr, "Content-Type: application/json"));
  if (!token_.empty()) headers.reset(curl_slist_append(headers.release(), ("Authorization: " + token_).c_str()));
  set_common(h.get(), url, headers.get(), body);
  curl_easy_setopt(h.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(config_.request_timeout.count()));
  response->clear();
  curl_easy_setopt(h.get(), CURLOPT_WRITEFUNCTION, append);
  curl_easy_setopt(h.get(), CURLOPT_WRITEDATA, response);
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(h.get(), CURLOPT_ERRORBUFFER, error);
  const CURLcode rc = curl_easy_perform(h.get());
  long status = 0;
  curl_easy_getinfo(h.get(), CURLINFO_RESPONSE_CODE, &status);
  if (rc != CURLE_OK) {
    *why = url + ": " + (error[0] != '\0' ? error : curl_easy_strerror(rc));
    return false;
  }
  if (status != 200) {
    *why = url + ": HTTP " + std::to_string(status) + " " + response->substr(0, 200);
    return false;
  }
  return true;
}

bool Client::authenticate(std::string* why) {
  token_.clear();
  std::string response;
  const std::string url = endpoint() + "/v3/auth/authenticate";
  if (!post_once(url, authenticate_request(config_.user, config_.password), &response, why)) return false;
  if (!parse_authenticate_response(response, &token_, why)) {
    *why = url + ": " + *why;
    return false;
  }
  return true;
}

bool Client::post(const std::string& path, const std::string& body, std::string* response, std::string* why) {
  why->clear();
  for (size_t tried = 0; tried < config_.endpoints.size() && !stopping_->load(); ++tried) {
    std::string error;
    if ((config_.user.empty() || !token_.empty() || authenticate(&error)) &&
        post_once(endpoint() + path, body, response, &error)) {
      return true;
    }
    *why += (why->empty() ? "" : "; ") + error;
    fail_over();
  }
  return false;
}

void Client::fail_over() {
  current_ = (current_ + 1) % config_.endpoints.size();
  token_.clear();  // a token is one member's; get one from the next
}

std::unique_ptr<WatchStream> Client::watch(const std::string& body, std::function<void(const std::string&)> on_line,
                                           std::string* why) {
  if (!config_.user.empty() && token_.empty() && !authenticate(why)) return nullptr;
  std::unique_ptr<WatchStream> w(new WatchStream());
  w->easy_.reset(curl_easy_init());
  w->headers_.reset(curl_slist_append(nullptr, "Content-Type: application/json"));
  if (!token_.empty()) {
    w->headers_.reset(curl_slist_append(w->headers_.release(), ("Authorization: " + token_).c_str()));
  }
  w->body_ = body;
  w->on_line_ = std::move(on_line);
  CURL* h = w->easy_.get();
  set_common(h, endpoint() + "/v3/watch", w->headers_.get(), w->body_);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, WatchStream::on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, w.get());
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, w->error_);
  curl_easy_setopt(h, CURLOPT_PRIVATE, w.get());
  curl_multi_add_handle(multi_, h);
  w->multi_ = multi_;
  return w;
}

std::vector<std::pair<CURL*, CURLcode>> Client::poll(int timeout_ms) {
  int running = 0;
  curl_multi_perform(multi_, &running);
  curl_multi_poll(multi_, nullptr, 0, timeout_ms, nullptr);
  curl_multi_perform(multi_, &running);
  std::vector<std::pair<CURL*, CURLcode>> done;
  int left = 0;
  while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
    if (m->msg == CURLMSG_DONE) done.push_back({m->easy_handle, m->data.result});
  }
  return done;
}

void Client::set_config(EtcdConfig config) {
  config_ = std::move(config);
  current_ = 0;
  token_.clear();
}

void Client::wake() { curl_multi_wakeup(multi_); }

}  // namespace ringlb::discovery::etcd
