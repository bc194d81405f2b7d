#include "server/discovery/etcd_discovery.h"

#include <deque>
#include <vector>

#include "server/discovery/etcd_client.h"
#include "server/discovery/etcd_model.h"
#include "server/discovery/etcd_protocol.h"
#include "server/base/log.h"

namespace ringlb::discovery {

using Clock = std::chrono::steady_clock;
using etcd::Backoff;
using etcd::PrefixMap;
using etcd::WatchStats;

struct EtcdDiscovery::Watch {
  Watch(std::string c, std::string p, std::shared_ptr<WatchStats> s, const EtcdConfig& e)
      : cluster(std::move(c)), prefix(std::move(p)), stats(std::move(s)),
        backoff(e.reconnect_min, e.reconnect_max, std::hash<std::string>()(cluster + prefix)) {}
  std::string cluster, prefix;
  std::shared_ptr<WatchStats> stats;
  PrefixMap map;
  bool need_range = true;   // no map yet, or it may have missed events (compaction)
  bool attempted = false;   // read once, or failed once
  bool failing = false;     // the last attempt failed (logged once per streak)
  std::unique_ptr<etcd::WatchStream> stream;
  std::deque<std::string> lines;  // watch messages received, not yet applied
  Backoff backoff;
  Clock::time_point retry_at{};
};

// Everything the thread owns. Reached only from the thread, except client.wake().
class EtcdDiscovery::Loop {
 public:
  Loop(EtcdDiscovery* owner) : owner_(owner), client_(EtcdConfig{}, &owner->stopping_) {}
  void wake() { client_.wake(); }

  void run() {
    while (!owner_->stopping_.load()) {
      take_config();
      const Clock::time_point now = Clock::now();
      Clock::time_point next = now + std::chrono::seconds(1);
      for (auto& [key, w] : watches_) {
        if (owner_->stopping_.load()) break;
        if (!w->stream && Clock::now() >= w->retry_at) start(*w);
        if (!w->stream && w->retry_at < next) next = w->retry_at;
      }
      report_synced();
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()).count();
      const auto done = client_.poll(static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(wait, 1000))));
      for (auto& [key, w] : watches_) {
        while (w->stream && !w->lines.empty()) {
          const std::string line = std::move(w->lines.front());
          w->lines.pop_front();
          on_line(*w, line);
        }
      }
      for (const auto& [handle, rc] : done) {
        for (auto& [key, w] : watches_) {
          if (!w->stream || w->stream->handle() != handle) continue;
          const long status = w->stream->http_status();
          failed(*w, "the watch ended (" + (rc != CURLE_OK ? std::string(curl_easy_strerror(rc))
                                                           : "HTTP " + std::to_string(status)) + ")");
        }
      }
    }
    watches_.clear();  // their streams leave the multi handle before the client goes
  }

 private:
  void take_config() {
    std::optional<Wanted> wanted;
    {
      std::lock_guard<std::mutex> lock(owner_->mu_);
      wanted.swap(owner_->pending_);
      if (wanted) generation_ = owner_->configured_;
    }
    if (!wanted) return;
    const bool etcd_changed = !(wanted->etcd == etcd_);
    etcd_ = wanted->etcd;
    if (etcd_changed) client_.set_config(etcd_);
    for (auto it = watches_.begin(); it != watches_.end();) {
      auto want = wanted->prefixes.find(it->second->cluster);
      if (want != wanted->prefixes.end() && want->second == it->second->prefix && !etcd_changed) {
        ++it;
        continue;
      }
      Watch& w = *it->second;
      if (want == wanted->prefixes.end() || want->second != w.prefix) {
        // No longer watched: withdraw what it gave (an unknown cluster: the reload removed it).
        owner_->publisher_->set_discovered(w.cluster, "etcd:" + w.prefix, Source::kEtcd, {});
        owner_->collector_->remove(w.cluster, w.prefix);
        log(LogLevel::kInfo, "cluster %s: no longer watching etcd prefix %s", w.cluster.c_str(), w.prefix.c_str());
        it = watches_.erase(it);
        continue;
      }
      // Another etcd (endpoints, credentials): read the prefix again from there, keeping the
      // current set until that read succeeds.
      w.stream.reset();
      w.lines.clear();
      w.need_range = true;
      w.retry_at = {};
      w.backoff = Backoff(etcd_.reconnect_min, etcd_.reconnect_max, std::hash<std::string>()(w.cluster + w.prefix));
      ++it;
    }
    for (const auto& [cluster, prefix] : wanted->prefixes) {
      const auto key = std::make_pair(cluster, prefix);
      if (watches_.count(key)) continue;
      watches_[key] = std::make_unique<Watch>(cluster, prefix, owner_->collector_->get(cluster, prefix), etcd_);
    }
    reported_ = false;
  }

  // Every prefix of the latest configure() was read once (or failed once): wait_synced returns.
  void report_synced() {
    if (reported_) return;
    for (const auto& [key, w] : watches_) {
      if (!w->attempted) return;
    }
    reported_ = true;
    std::lock_guard<std::mutex> lock(owner_->mu_);
    owner_->synced_ = std::max(owner_->synced_, generation_);
    owner_->synced_cv_.notify_all();
  }

  void start(Watch& w) {
    std::string why;
    if (w.need_range) {
      // Synchronous, bounded by request-timeout and aborted by stop(): the watches' streams wait
      // in their sockets meanwhile.
      std::string response;
      int64_t revision = 0;
      std::vector<etcd::KeyValue> kvs;
      if (!client_.post("/v3/kv/range", etcd::range_request(w.prefix), &response, &why) ||
          !etcd::parse_range_response(response, &revision, &kvs, &why)) {
        failed(w, "reading the prefix: " + why);
        return;
      }
      std::vector<PrefixMap::Bad> bad;
      w.map.reset(kvs, revision, &bad);
      w.need_range = false;
      changed(w, bad);
    }
    w.attempted = true;
    w.lines.clear();
    w.stream = client_.watch(etcd::watch_request(w.prefix, w.map.revision() + 1),
                             [lines = &w.lines](const std::string& line) { lines->push_back(line); }, &why);
    if (!w.stream) failed(w, "starting the watch: " + why);
  }

  void on_line(Watch& w, const std::string& line) {
    etcd::WatchMessage m;
    std::string why;
    if (!etcd::parse_watch_message(line, &m, &why)) {
      failed(w, "a watch message that is not etcd's (" + why + "): " + line.substr(0, 200));
      return;
    }
    if (!m.error.empty()) {
      failed(w, "the watch failed: " + m.error);
      return;
    }
    if (m.compact_revision > 0 || m.canceled) {
      // What we asked for is gone (compacted), or etcd dropped the watch: read the prefix anew.
      log(LogLevel::kWarning, "cluster %s: etcd %s the watch of %s%s%s; reading the prefix again", w.cluster.c_str(),
          m.compact_revision > 0 ? "compacted" : "canceled", w.prefix.c_str(),
          m.compact_revision > 0 ? (" (at revision " + std::to_string(m.compact_revision) + ")").c_str() : "",
          m.cancel_reason.empty() ? "" : (": " + m.cancel_reason).c_str());
      w.stats->resyncs.fetch_add(1, std::memory_order_relaxed);
      w.stats->up.store(0, std::memory_order_relaxed);
      w.stream.reset();
      w.lines.clear();
      w.need_range = true;
      // A compaction is over once read again; a cancel may repeat (a permission, a limit):
      // back off, so that it cannot turn into a loop of reads.
      w.retry_at = m.compact_revision > 0 ? Clock::time_point{} : Clock::now() + w.backoff.next();
      return;
    }
    if (m.created) {
      w.stats->up.store(1, std::memory_order_relaxed);
      w.backoff.reset();
      if (w.failing) log(LogLevel::kInfo, "cluster %s: watching etcd prefix %s again on %s", w.cluster.c_str(),
                         w.prefix.c_str(), client_.endpoint().c_str());
      w.failing = false;
    }
    if (!m.events.empty()) {
      std::vector<PrefixMap::Bad> bad;
      w.map.apply(m.events, &bad);
      changed(w, bad);
    }
  }

  // The map changed: count and log its bad values, publish its backends.
  void changed(Watch& w, const std::vector<PrefixMap::Bad>& bad) {
    for (const PrefixMap::Bad& b : bad) {
      w.stats->bad_values.fetch_add(1, std::memory_order_relaxed);
      log(LogLevel::kWarning, "cluster %s: etcd key %s skipped: %s", w.cluster.c_str(), b.key.c_str(), b.why.c_str());
    }
    std::vector<BackendConfig> backends = w.map.backends();
    const size_t n = backends.size();
    bool published = false;
    const std::string why = owner_->publisher_->set_discovered(w.cluster, "etcd:" + w.prefix, Source::kEtcd,
                                                               std::move(backends), &published);
    if (!why.empty()) {
      log(LogLevel::kError, "cluster %s: etcd prefix %s not applied: %s", w.cluster.c_str(), w.prefix.c_str(),
          why.c_str());
    } else if (published) {
      log(LogLevel::kInfo, "cluster %s: etcd prefix %s gives %zu backend%s (revision %lld)", w.cluster.c_str(),
          w.prefix.c_str(), n, n == 1 ? "" : "s", static_cast<long long>(w.map.revision()));
    }
    w.stats->keys.store(w.map.keys(), std::memory_order_relaxed);
    w.stats->backends.store(n, std::memory_order_relaxed);
    w.stats->revision.store(w.map.revision(), std::memory_order_relaxed);
  }

  // The attempt or the watch failed: keep the set, try again after the backoff (next endpoint).
  void failed(Watch& w, const std::string& why) {
    w.stream.reset();
    w.lines.clear();
    w.attempted = true;
    w.stats->up.store(0, std::memory_order_relaxed);
    w.stats->reconnects.fetch_add(1, std::memory_order_relaxed);
    const std::chrono::milliseconds delay = w.backoff.next();
    w.retry_at = Clock::now() + delay;
    client_.fail_over();
    if (owner_->stopping_.load()) return;
    log(w.failing ? LogLevel::kDebug : LogLevel::kWarning,
        "cluster %s: etcd prefix %s: %s; keeping its %zu backends, retrying in %lld ms", w.cluster.c_str(),
        w.prefix.c_str(), why.c_str(), w.map.backends().size(), static_cast<long long>(delay.count()));
    w.failing = true;
  }

  EtcdDiscovery* owner_;
  etcd::Client client_;
  EtcdConfig etcd_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Watch>> watches_;
  uint64_t generation_ = 0;
  bool reported_ = true;
};

EtcdDiscovery::EtcdDiscovery(ClusterPublisher* publisher) : publisher_(publisher) {}

EtcdDiscovery::~EtcdDiscovery() { stop(); }

void EtcdDiscovery::configure(const Config& config) {
  Wanted wanted;
  wanted.etcd = config.etcd;
  for (const ClusterConfig& c : config.clusters) {
    if (c.discovered && !c.etcd_prefix.empty()) wanted.prefixes[c.name] = c.etcd_prefix;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (wanted.prefixes.empty() && !loop_) return;  // no etcd in this config: no thread
  if (!wanted.prefixes.empty()) ++configured_;
  pending_ = std::move(wanted);
  if (!loop_) {
    loop_ = std::make_unique<Loop>(this);
    thread_ = std::thread([loop = loop_.get()] { loop->run(); });
  }
  loop_->wake();
}

bool EtcdDiscovery::wait_synced(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return synced_cv_.wait_for(lock, timeout, [this] { return synced_ >= configured_; });
}

void EtcdDiscovery::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!loop_) return;
    stopping_ = true;
    loop_->wake();
  }
  if (thread_.joinable()) thread_.join();
  loop_.reset();
}

}  // namespace ringlb::discovery
