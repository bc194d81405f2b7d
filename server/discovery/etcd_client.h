// libcurl owners for etcd's JSON gateway: one request (range, authenticate) run to completion,
// and watch streams driven by a curl multi handle, so that one thread can wait on every watch
// and be woken at once (curl_multi_wakeup) by a reload or the shutdown. Endpoints fail over in
// order: a failure moves every later request to the next one.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "server/config/config.h"

namespace ringlb::discovery::etcd {

struct CurlEasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;
struct CurlListDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlList = std::unique_ptr<curl_slist, CurlListDeleter>;

class Client;

// One /v3/watch request in flight: its bytes are cut into lines (one JSON message each) and
// handed to `on_line` from inside curl_multi_perform.
class WatchStream {
 public:
  ~WatchStream();
  WatchStream(const WatchStream&) = delete;
  WatchStream& operator=(const WatchStream&) = delete;
  CURL* handle() const { return easy_.get(); }
  long http_status() const;

 private:
  friend class Client;
  WatchStream() = default;
  static size_t on_data(char* data, size_t size, size_t n, void* self);

  CURLM* multi_ = nullptr;  // the multi it was added to (removed in the destructor)
  CurlEasy easy_;
  CurlList headers_;
  std::string body_;     // the request: curl reads it from here
  std::string pending_;  // bytes of a line not yet complete
  std::function<void(const std::string&)> on_line_;
  char error_[CURL_ERROR_SIZE] = {};
};

class Client {
 public:
  // `stopping` aborts a request in progress (its progress callback checks it).
  Client(EtcdConfig config, const std::atomic<bool>* stopping);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // POSTs `body` to `path` on the current endpoint, then on each other endpoint once, until one
  // answers; with user/password, authenticates first when there is no token. False and *why
  // (naming each endpoint's failure) when none answered with 200.
  bool post(const std::string& path, const std::string& body, std::string* response, std::string* why);
  // Starts a watch on the current endpoint, added to the multi handle (authenticating first when
  // there is no token: a resumed watch runs no range before it). Null and *why on failure.
  std::unique_ptr<WatchStream> watch(const std::string& body, std::function<void(const std::string&)> on_line,
                                     std::string* why);
  // A failure of the current endpoint (a watch ended): the next request tries the next one,
  // and authenticates again.
  void fail_over();
  const std::string& endpoint() const { return config_.endpoints[current_]; }

  // Runs transfers, waits up to `timeout_ms` for traffic or wake(). Returns the handles whose
  // transfer ended, with curl's result for each.
  std::vector<std::pair<CURL*, CURLcode>> poll(int timeout_ms);
  // New settings (a reload): the first endpoint next, a fresh token.
  void set_config(EtcdConfig config);
  // Any thread: ends poll()'s wait now.
  void wake();

 private:
  bool post_once(const std::string& url, const std::string& body, std::string* response, std::string* why);
  bool authenticate(std::string* why);
  void set_common(CURL* h, const std::string& url, curl_slist* headers, const std::string& body);

  EtcdConfig config_;
  const std::atomic<bool>* stopping_;
  CURLM* multi_;
  size_t current_ = 0;
  std::string token_;  // etcd's auth token, sent as the Authorization header
};

}  // namespace ringlb::discovery::etcd
