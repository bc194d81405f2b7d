// DNS discovery: one thread with its own c-ares channel and poll loop resolves every backend
// written as a name ("db.internal:5432": A and AAAA; "srv:_pg._tcp.internal": SRV, then each
// target's A and AAAA), again at the records' TTL within the cluster's resolve-min-interval and
// resolve-max-interval, and hands each name's set to the ClusterPublisher when it changes. A
// failed lookup keeps the last good set for resolve-hold (dns_policy.h), then withdraws it.
// Workers and the acceptor never wait for it: it only publishes snapshots, as a reload does.
#pragma once

#include <ares.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "metrics/dns_stats.h"
#include "server/discovery/ares_channel.h"
#include "server/config/config.h"
#include "server/discovery/cluster_publisher.h"
#include "server/discovery/dns_policy.h"

namespace ringlb::discovery {

class DnsResolver {
 public:
  DnsResolver(ClusterPublisher* publisher, metrics::DnsStats* stats);
  ~DnsResolver();  // stop()
  DnsResolver(const DnsResolver&) = delete;
  DnsResolver& operator=(const DnsResolver&) = delete;

  // Starts the thread with the names of `config` (and its [resolvers]). Empty on success,
  // otherwise why c-ares could not start.
  std::string start(const Config& config);
  // A reload's config (any thread): new names are looked up at once, names no longer written
  // are withdrawn, the others keep their state and are republished with their entries' new
  // settings. [resolvers] is read at start-up only.
  void update(const Config& config);
  // Waits until every name has answered (or failed) once, for at most `timeout`: how start-up
  // waits for DNS. Returns how many names have not.
  size_t wait_first_answers(Millis timeout);
  // Ends the thread (pending lookups are cancelled). Idempotent.
  void stop();
  // Names configured now, for the start-up line.
  size_t names() const;
  // The longest one lookup may take (every server, every attempt, c-ares doubling the timeout
  // each round): start-up waits at most this long.
  Millis lookup_bound() const;

 private:
  struct Want;
  struct Lookup;
  struct Query;

  void run();
  void apply(std::vector<Want> wants);
  void begin(Lookup& l, uint64_t now);
  void on_addresses(Query* q, int status, ares_addrinfo* res);
  void on_srv(Query* q, int status, unsigned char* answer, int length);
  void srv_target_done(Lookup& l);
  void finish(Lookup& l, dns::Result result, std::vector<dns::Resolved> set, uint32_t ttl);
  void publish(const Lookup& l, const std::vector<BackendConfig>& entries, bool withdraw);
  void report(const Lookup& l, const dns::NameState::Step& step, size_t before);
  void note_answered();
  int poll_once(uint64_t now);
  static void addresses_cb(void* arg, int status, int timeouts, ares_addrinfo* res);
  static void srv_cb(void* arg, int status, int timeouts, unsigned char* answer, int length);
  static void srv_target_cb(void* arg, int status, int timeouts, ares_addrinfo* res);

  ClusterPublisher* publisher_;
  metrics::DnsStats* stats_;
  AresChannel channel_;
  int wake_fd_ = -1;  // an eventfd: update() and stop() wake the poll
  Millis lookup_bound_{0};
  std::thread thread_;

  mutable std::mutex mu_;  // guards what update()/stop()/wait_first_answers() share with run()
  std::condition_variable answered_cv_;
  bool stopping_ = false;
  std::optional<std::vector<Want>> pending_;
  size_t configured_ = 0;
  size_t unanswered_ = 0;

  // The thread's own, by lookup id (callbacks name an id, so a lookup a reload removed while
  // its query was on the wire is simply not found).
  std::map<uint64_t, std::unique_ptr<Lookup>> lookups_;
  uint64_t next_id_ = 1;
};

}  // namespace ringlb::discovery
