// etcd discovery: each cluster with discovery = "etcd" gets the backends under its prefix. One
// thread of its own (never a worker or the acceptor) reads each prefix (/v3/kv/range), then
// watches it from the next revision (/v3/watch) and hands every change to the ClusterPublisher,
// which republishes the cluster like a reload. A watch that breaks is resumed from the last
// revision seen, after a bounded backoff and on the next endpoint; a compaction or a canceled
// watch forces a fresh range. Meanwhile the last good set keeps serving. Every node of a fleet
// builds the same list (keys in order), so Maglev gives every node the same table.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "server/config/config.h"
#include "server/discovery/cluster_publisher.h"
#include "server/discovery/etcd_stats.h"

namespace ringlb::discovery {

class EtcdDiscovery {
 public:
  explicit EtcdDiscovery(ClusterPublisher* publisher);
  ~EtcdDiscovery();  // stop()
  EtcdDiscovery(const EtcdDiscovery&) = delete;
  EtcdDiscovery& operator=(const EtcdDiscovery&) = delete;

  // Start-up and reloads (the acceptor's thread, after the publisher has the file's config):
  // the prefixes to watch and how to reach etcd. New prefixes are read and watched, removed
  // ones stopped and their backends withdrawn. Starts the thread the first time one is needed.
  void configure(const Config& config);
  // Waits until each prefix configured so far was read once (or failed once), up to `timeout`:
  // start-up waits so that a node does not serve its first clients from an empty cluster.
  bool wait_synced(std::chrono::milliseconds timeout);
  // Ends the watches and joins the thread; prompt (curl_multi_wakeup, and requests in progress
  // abort).
  void stop();
  // ringlb_etcd_* for the exporter.
  std::shared_ptr<etcd::StatsCollector> collector() const { return collector_; }

 private:
  struct Watch;
  struct Wanted {
    EtcdConfig etcd;
    std::map<std::string, std::string> prefixes;  // cluster -> prefix
  };
  class Loop;

  ClusterPublisher* publisher_;
  std::shared_ptr<etcd::StatsCollector> collector_ = std::make_shared<etcd::StatsCollector>();
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable synced_cv_;
  std::optional<Wanted> pending_;  // the latest configure(), for the thread to take
  uint64_t configured_ = 0;        // configure() calls that named a prefix
  uint64_t synced_ = 0;            // the last of those whose prefixes were all read once
  std::unique_ptr<Loop> loop_;     // the thread's state (its curl handles)
  std::thread thread_;
};

}  // namespace ringlb::discovery
