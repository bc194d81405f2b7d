#include "server/discovery/dns_resolver.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "server/base/clock.h"
#include "server/base/log.h"

namespace ringlb::discovery {

using dns::NameState;
using dns::Resolved;
using dns::Result;

namespace {

Result result_of(int status) {
  switch (status) {
    case ARES_SUCCESS: return Result::kOk;
    case ARES_ENOTFOUND: return Result::kNxdomain;
    case ARES_ENODATA: return Result::kNodata;
    case ARES_ESERVFAIL: return Result::kServfail;
    case ARES_EREFUSED: return Result::kRefused;
    case ARES_ETIMEOUT: return Result::kTimeout;
    case ARES_ECONNREFUSED: return Result::kUnreachable;
    default: return Result::kError;
  }
}

// The addresses (port 0) and smallest TTL of a getaddrinfo answer.
std::vector<Address> addresses_of(const ares_addrinfo* res, uint32_t* ttl) {
  std::vector<Address> out;
  *ttl = UINT32_MAX;
  for (const ares_addrinfo_node* n = res != nullptr ? res->nodes : nullptr; n != nullptr; n = n->ai_next) {
    if (n->ai_family != AF_INET && n->ai_family != AF_INET6) continue;
    Address a = address_from_sockaddr(n->ai_addr, n->ai_addrlen);
    a.set_port(0);
    out.push_back(a);
    *ttl = std::min(*ttl, static_cast<uint32_t>(std::max(n->ai_ttl, 0)));
  }
  if (out.empty()) *ttl = 0;
  return out;
}

// "127.0.0.2:80, 127.0.0.3:80" (the first few; a host name's without its port, which is each
// entry's).
std::string list(const std::vector<Resolved>& set) {
  std::string out;
  for (size_t i = 0; i < set.size() && i < 8; ++i) {
    std::string a = set[i].address.to_string();
    if (set[i].address.port() == 0) a.erase(a.rfind(':'));
    out += (i ? ", " : "") + a;
  }
  if (set.size() > 8) out += ", ...";
  return out;
}

std::string plural(size_t n) { return std::to_string(n) + (n == 1 ? " address" : " addresses"); }

std::string duration(Millis d) {
  if (d.count() % 60000 == 0 && d.count() > 0) return std::to_string(d.count() / 60000) + "m";
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + "s";
  return std::to_string(d.count()) + "ms";
}

}  // namespace

// One name of one cluster as the config writes it, with every entry naming it.
struct DnsResolver::Want {
  std::string cluster;
  DnsName::Kind kind;
  std::string host;
  Millis min, max, hold;
  std::vector<BackendConfig> entries;  // for a host name, one per port
};

struct DnsResolver::Lookup {
  Want want;
  uint64_t id;
  std::string label;  // the metric's and the log's name: "db.internal", "srv:_pg._tcp.internal"
  NameState state;
  uint64_t next_at = 0;  // monotonic ns of the next lookup
  bool in_flight = false;
  // An SRV lookup's second half: its records, then each target's addresses.
  std::vector<dns::SrvRecord> srv;
  std::map<std::string, std::vector<Address>> targets;
  size_t targets_pending = 0;
  uint32_t ttl = 0;
  Result target_failure = Result::kOk;
  bool answered_before = false;  // has had a good answer (the log says "resolves again")

  metrics::DnsStats::Key key() const { return {want.cluster, label}; }
  std::string where() const { return "dns: cluster '" + want.cluster + "': " + label; }
};

// A callback's argument: which lookup (by id) and, for an SRV target, which target.
struct DnsResolver::Query {
  DnsResolver* self;
  uint64_t id;
  std::string target;
};

DnsResolver::DnsResolver(ClusterPublisher* publisher, metrics::DnsStats* stats)
    : publisher_(publisher), stats_(stats) {}

DnsResolver::~DnsResolver() { stop(); }

std::string DnsResolver::start(const Config& config) {
  if (std::string why = channel_.init(config.resolvers); !why.empty()) return why;
  // c-ares tries each server once per round, the timeout doubling each round.
  const int64_t servers = static_cast<int64_t>(std::max<size_t>(channel_.servers(), 1));
  lookup_bound_ = Millis{0};
  for (unsigned round = 0; round < config.resolvers.attempts; ++round) {
    lookup_bound_ += config.resolvers.timeout * (1LL << round) * servers;
  }
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return std::string("dns: eventfd: ") + strerror(errno);
  update(config);
  thread_ = std::thread([this] { run(); });
  return {};
}

void DnsResolver::update(const Config& config) {
  std::map<std::tuple<std::string, DnsName::Kind, std::string>, Want> wants;
  for (const ClusterConfig& c : config.clusters) {
    for (const BackendConfig& e : c.names) {
      Want& w = wants[{c.name, e.dns.kind, e.dns.host}];
      w = Want{c.name, e.dns.kind, e.dns.host, c.resolve_min_interval, c.resolve_max_interval, c.resolve_hold,
               std::move(w.entries)};
      w.entries.push_back(e);
    }
  }
  std::vector<Want> list;
  for (auto& [key, w] : wants) list.push_back(std::move(w));
  {
    std::lock_guard<std::mutex> lock(mu_);
    configured_ = list.size();
    pending_ = std::move(list);
  }
  const uint64_t one = 1;
  if (wake_fd_ >= 0 && write(wake_fd_, &one, sizeof(one)) < 0) {
    // A full counter already wakes the loop.
  }
}

Millis DnsResolver::lookup_bound() const { return lookup_bound_; }

size_t DnsResolver::names() const {
  std::lock_guard<std::mutex> lock(mu_);
  return configured_;
}

size_t DnsResolver::wait_first_answers(Millis timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  answered_cv_.wait_for(lock, timeout, [this] { return !pending_ && unanswered_ == 0; });
  return pending_ ? configured_ : unanswered_;
}

void DnsResolver::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  const uint64_t one = 1;
  if (wake_fd_ >= 0 && write(wake_fd_, &one, sizeof(one)) < 0) {
  }
  if (thread_.joinable()) thread_.join();
  // Cancels what is still on the wire: the callbacks see ARES_EDESTRUCTION and do nothing.
  channel_.reset();
  lookups_.clear();
  if (wake_fd_ >= 0) close(wake_fd_);
  wake_fd_ = -1;
}

void DnsResolver::apply(std::vector<Want> wants) {
  std::map<std::tuple<std::string, DnsName::Kind, std::string>, Want*> by_key;
  for (Want& w : wants) by_key[{w.cluster, w.kind, w.host}] = &w;
  for (auto it = lookups_.begin(); it != lookups_.end();) {
    Lookup& l = *it->second;
    auto found = by_key.find({l.want.cluster, l.want.kind, l.want.host});
    if (found == by_key.end()) {
      publish(l, l.want.entries, /*withdraw=*/true);
      stats_->forget(l.key());
      log(LogLevel::kInfo, "%s: no longer configured", l.where().c_str());
      it = lookups_.erase(it);
      continue;
    }
    // Kept: entries the reload dropped are withdrawn, the others republished with their (maybe
    // new) settings.
    std::set<std::string> now;
    for (const BackendConfig& e : found->second->entries) now.insert(e.text);
    std::vector<BackendConfig> gone;
    for (const BackendConfig& e : l.want.entries) {
      if (!now.count(e.text)) gone.push_back(e);
    }
    publish(l, gone, /*withdraw=*/true);
    l.want = std::move(*found->second);
    l.state.set_hold(l.want.hold);
    publish(l, l.want.entries, /*withdraw=*/false);
    by_key.erase(found);
    ++it;
  }
  for (auto& [key, w] : by_key) {
    const Millis hold = w->hold;
    auto l = std::make_unique<Lookup>(Lookup{std::move(*w), next_id_++, {}, NameState(hold)});
    l->label = (l->want.kind == DnsName::Kind::kSrv ? "srv:" : "") + l->want.host;
    lookups_.emplace(l->id, std::move(l));
  }
}

void DnsResolver::publish(const Lookup& l, const std::vector<BackendConfig>& entries, bool withdraw) {
  for (const BackendConfig& e : entries) {
    std::vector<Resolved> set = l.state.served();
    if (e.dns.kind == DnsName::Kind::kHost) {
      for (Resolved& r : set) r.address.set_port(e.dns.port);
    }
    std::vector<BackendConfig> backends = withdraw ? std::vector<BackendConfig>{} : dns::backends_for(e, set);
    const std::string why = publisher_->set_discovered(l.want.cluster, "dns:" + e.text, Source::kDns,
                                                       std::move(backends));
    // A cluster a reload has just removed refuses: its lookup goes at the update that follows.
    if (!why.empty() && !withdraw) log(LogLevel::kWarning, "%s: not published: %s", l.where().c_str(), why.c_str());
  }
}

void DnsResolver::begin(Lookup& l, uint64_t) {
  l.in_flight = true;
  auto* q = new Query{this, l.id, {}};
  if (l.want.kind == DnsName::Kind::kSrv) {
    ares_query(channel_.get(), l.want.host.c_str(), ns_c_in, ns_t_srv, srv_cb, q);
    return;
  }
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_flags = ARES_AI_NOSORT;  // ringlb orders them itself; sorting would connect() to each
  ares_getaddrinfo(channel_.get(), l.want.host.c_str(), nullptr, &hints, addresses_cb, q);
}

void DnsResolver::addresses_cb(void* arg, int status, int, ares_addrinfo* res) {
  std::unique_ptr<Query> q(static_cast<Query*>(arg));
  if (status != ARES_EDESTRUCTION && status != ARES_ECANCELLED) q->self->on_addresses(q.get(), status, res);
  if (res != nullptr) ares_freeaddrinfo(res);
}

void DnsResolver::on_addresses(Query* q, int status, ares_addrinfo* res) {
  auto it = lookups_.find(q->id);
  if (it == lookups_.end()) return;
  uint32_t ttl = 0;
  std::vector<Address> addresses = status == ARES_SUCCESS ? addresses_of(res, &ttl) : std::vector<Address>{};
  if (status == ARES_SUCCESS && addresses.empty()) status = ARES_ENODATA;
  std::vector<Resolved> set;
  for (const Address& a : addresses) set.push_back(Resolved{a, 1, false});
  finish(*it->second, result_of(status), std::move(set), ttl);
}

void DnsResolver::srv_cb(void* arg, int status, int, unsigned char* answer, int length) {
  std::unique_ptr<Query> q(static_cast<Query*>(arg));
  if (status != ARES_EDESTRUCTION && status != ARES_ECANCELLED) q->self->on_srv(q.get(), status, answer, length);
}

void DnsResolver::on_srv(Query* q, int status, unsigned char* answer, int length) {
  auto it = lookups_.find(q->id);
  if (it == lookups_.end()) return;
  Lookup& l = *it->second;
  ares_srv_reply* replies = nullptr;
  if (status == ARES_SUCCESS) status = ares_parse_srv_reply(answer, length, &replies);
  if (status != ARES_SUCCESS) {
    finish(l, result_of(status), {}, 0);
    return;
  }
  l.srv.clear();
  l.targets.clear();
  std::set<std::string> targets;
  for (const ares_srv_reply* r = replies; r != nullptr; r = r->next) {
    l.srv.push_back(dns::SrvRecord{r->priority, r->weight, r->port, r->host});
    targets.insert(r->host);
  }
  ares_free_data(replies);
  l.ttl = dns::min_answer_ttl(answer, static_cast<size_t>(length), ns_t_srv).value_or(0);
  l.target_failure = Result::kOk;
  l.targets_pending = targets.size();
  if (targets.empty()) {
    finish(l, Result::kNodata, {}, 0);
    return;
  }
  // The targets' addresses, each a query of its own; finished when the last one answers.
  for (const std::string& t : targets) {
    ares_addrinfo_hints hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_flags = ARES_AI_NOSORT;
    ares_getaddrinfo(channel_.get(), t.c_str(), nullptr, &hints, srv_target_cb, new Query{this, l.id, t});
  }
}

void DnsResolver::srv_target_cb(void* arg, int status, int, ares_addrinfo* res) {
  std::unique_ptr<Query> q(static_cast<Query*>(arg));
  if (status != ARES_EDESTRUCTION && status != ARES_ECANCELLED) {
    DnsResolver* self = q->self;
    auto it = self->lookups_.find(q->id);
    if (it != self->lookups_.end()) {
      Lookup& l = *it->second;
      uint32_t ttl = 0;
      std::vector<Address> addresses = status == ARES_SUCCESS ? addresses_of(res, &ttl) : std::vector<Address>{};
      if (!addresses.empty()) {
        l.targets[q->target] = std::move(addresses);
        l.ttl = std::min(l.ttl, ttl);
      } else if (l.target_failure == Result::kOk) {
        l.target_failure = status == ARES_SUCCESS ? Result::kNodata : result_of(status);
      }
      if (--l.targets_pending == 0) self->srv_target_done(l);
    }
  }
  if (res != nullptr) ares_freeaddrinfo(res);
}

void DnsResolver::srv_target_done(Lookup& l) {
  std::vector<Resolved> set = dns::from_srv(l.srv, l.targets);
  // Targets that do not resolve are left out; if none does, the lookup failed as they did.
  if (set.empty()) {
    finish(l, l.target_failure == Result::kOk ? Result::kNodata : l.target_failure, {}, 0);
  } else {
    finish(l, Result::kOk, std::move(set), l.ttl);
  }
}

void DnsResolver::finish(Lookup& l, Result result, std::vector<Resolved> set, uint32_t ttl) {
  const uint64_t now = monotonic_ns();
  l.in_flight = false;
  stats_->resolved(l.key(), dns::result_name(result));
  const size_t before = l.state.served().size();
  const NameState::Step step = result == Result::kOk ? l.state.succeeded(now, std::move(set))
                                                     : l.state.failed(now, result);
  const Millis wait = result == Result::kOk ? dns::next_interval(ttl, l.want.min, l.want.max)
                                            : dns::retry_interval(l.state.failures(), l.want.min, l.want.max);
  l.next_at = now + to_ns(wait);
  if (step.set_changed) publish(l, l.want.entries, /*withdraw=*/false);
  stats_->set_addresses(l.key(), l.state.served().size());
  report(l, step, before);
  if (result == Result::kOk) l.answered_before = true;
  if (step.from == NameState::State::kPending) note_answered();
}

void DnsResolver::report(const Lookup& l, const NameState::Step& step, size_t before) {
  // One line per change of state (or of the set), not per lookup.
  const std::string where = l.where();
  const char* why = dns::result_name(l.state.last_failure());
  const size_t n = l.state.served().size();
  using S = NameState::State;
  if (step.to == S::kValid && step.from != S::kValid) {
    log(LogLevel::kInfo, "%s: %s%s (%s)", where.c_str(), l.answered_before ? "resolves again: " : "",
        plural(n).c_str(), list(l.state.served()).c_str());
  } else if (step.to == S::kValid && step.set_changed) {
    log(LogLevel::kInfo, "%s: %s (was %zu): %s", where.c_str(), plural(n).c_str(), before,
        list(l.state.served()).c_str());
  } else if (step.to == S::kHolding && step.from != S::kHolding) {
    log(LogLevel::kWarning, "%s: lookup failed (%s); keeping its %s for up to %s", where.c_str(), why,
        plural(n).c_str(), duration(l.want.hold).c_str());
  } else if (step.to == S::kFailed && step.from != S::kFailed && step.from != S::kPending) {
    log(LogLevel::kError, "%s: lookups failing for %s (%s): its %s withdrawn", where.c_str(),
        duration(l.want.hold).c_str(), why, plural(before).c_str());
  } else if (step.to == S::kFailed && step.from == S::kPending) {
    log(LogLevel::kWarning, "%s: lookup failed (%s); no addresses yet", where.c_str(), why);
  }
}

void DnsResolver::note_answered() {
  std::lock_guard<std::mutex> lock(mu_);
  if (unanswered_ > 0) --unanswered_;
  if (unanswered_ == 0) answered_cv_.notify_all();
}

int DnsResolver::poll_once(uint64_t now) {
  // Sleep until the next lookup is due, a held set expires, or c-ares needs its timeouts run.
  uint64_t until = now + 1'000'000'000ULL;
  for (const auto& [id, l] : lookups_) {
    if (!l->in_flight) until = std::min(until, l->next_at);
    if (auto d = l->state.hold_deadline()) until = std::min(until, *d);
  }
  timeval max{}, tv{};
  const uint64_t wait_ns = until > now ? until - now : 0;
  max.tv_sec = static_cast<time_t>(wait_ns / 1'000'000'000ULL);
  max.tv_usec = static_cast<suseconds_t>(wait_ns % 1'000'000'000ULL / 1000);
  const timeval* t = ares_timeout(channel_.get(), &max, &tv);
  const int timeout_ms = static_cast<int>(t->tv_sec * 1000 + (t->tv_usec + 999) / 1000);

  ares_socket_t socks[ARES_GETSOCK_MAXNUM];
  const int bits = ares_getsock(channel_.get(), socks, ARES_GETSOCK_MAXNUM);
  pollfd fds[ARES_GETSOCK_MAXNUM + 1];
  nfds_t n = 0;
  fds[n++] = pollfd{wake_fd_, POLLIN, 0};
  for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
    short events = 0;
    if (ARES_GETSOCK_READABLE(bits, i)) events |= POLLIN;
    if (ARES_GETSOCK_WRITABLE(bits, i)) events |= POLLOUT;
    if (events != 0) fds[n++] = pollfd{socks[i], events, 0};
  }
  const int ready = poll(fds, n, timeout_ms);
  if (ready < 0 && errno != EINTR) return -errno;
  if (fds[0].revents & POLLIN) {
    uint64_t count;
    if (read(wake_fd_, &count, sizeof(count)) < 0) {
      // EAGAIN: another read took it.
    }
  }
  for (nfds_t i = 1; i < n; ++i) {
    if (fds[i].revents == 0) continue;
    const bool in = fds[i].revents & (POLLIN | POLLERR | POLLHUP);
    const bool out = fds[i].revents & POLLOUT;
    ares_process_fd(channel_.get(), in ? fds[i].fd : ARES_SOCKET_BAD, out ? fds[i].fd : ARES_SOCKET_BAD);
  }
  ares_process_fd(channel_.get(), ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
  return 0;
}

void DnsResolver::run() {
  for (;;) {
    std::optional<std::vector<Want>> wants;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) break;
      wants.swap(pending_);
      // Until apply() has counted what is still unanswered: every name. Otherwise a start-up
      // wait that looked in between (nothing pending, nothing unanswered yet) returned at once.
      if (wants) unanswered_ = std::max(unanswered_, wants->size());
    }
    if (wants) {
      apply(std::move(*wants));
      size_t pending = 0;
      for (const auto& [id, l] : lookups_) pending += l->state.state() == NameState::State::kPending;
      std::lock_guard<std::mutex> lock(mu_);
      unanswered_ = pending;
      if (unanswered_ == 0 && !pending_) answered_cv_.notify_all();
    }
    const uint64_t now = monotonic_ns();
    for (auto& [id, l] : lookups_) {
      if (!l->in_flight && now >= l->next_at) begin(*l, now);
      if (auto d = l->state.hold_deadline(); d && now >= *d) {
        const size_t before = l->state.served().size();
        const NameState::Step step = l->state.expire(now);
        if (step.set_changed) {
          publish(*l, l->want.entries, /*withdraw=*/true);
          stats_->set_addresses(l->key(), 0);
          report(*l, step, before);
        }
      }
    }
    if (int err = poll_once(now); err < 0) {
      log(LogLevel::kError, "dns: poll: %s; DNS names are no longer resolved", strerror(-err));
      break;
    }
  }
}

}  // namespace ringlb::discovery
