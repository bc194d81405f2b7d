#include "tests/proxy/harness.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

namespace ringlb::proxy::testing {

ListenConfig listener(const std::string& name, const std::string& address, const std::string& to) {
  ListenConfig l;
  l.name = name;
  std::string why;
  EXPECT_TRUE(parse_address(address, &l.address, &why)) << why;
  l.cluster = to;
  return l;
}

ClusterConfig cluster(const std::string& name, const std::vector<std::string>& backends) {
  ClusterConfig c;
  c.name = name;
  c.health.interval = Millis(0);
  for (const std::string& text : backends) {
    BackendConfig b;
    const Status parsed = parse_backend(text, &b);
    EXPECT_TRUE(parsed.ok()) << parsed.message();
    c.backends.push_back(b);
  }
  return c;
}

Cidr cidr(const std::string& text) {
  Cidr c;
  std::string why;
  EXPECT_TRUE(parse_cidr(text, &c, &why)) << why;
  return c;
}

sockaddr_in6 ipv4(const std::string& address, uint16_t port) {
  sockaddr_in6 out{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
  v4->sin_family = AF_INET;
  v4->sin_port = htons(port);
  inet_pton(AF_INET, address.c_str(), &v4->sin_addr);
  return out;
}

Config default_config() {
  Config c;
  c.clusters = {cluster("web", {"127.0.0.1:9001", "127.0.0.1:9002"})};
  c.listen = {listener("in", "127.0.0.1:8000", "web")};
  c.buffers_per_worker = 8;
  c.buffer_size = 1024;
  c.max_connections = 16;
  return c;
}

namespace {

std::string be(size_t width, size_t v) {
  std::string out(width, '\0');
  for (size_t i = 0; i < width; ++i) out[width - 1 - i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}
std::string vec(size_t width, const std::string& body) { return be(width, body.size()) + body; }

}  // namespace

std::string client_hello(const std::string& server_name) {
  std::string extensions;
  if (!server_name.empty()) {
    extensions += be(2, 0) + vec(2, vec(2, std::string(1, '\0') + vec(2, server_name)));
  }
  extensions += be(2, 43) + vec(2, std::string("\x02\x03\x04", 3));  // supported_versions
  const std::string body = std::string("\x03\x03", 2) + std::string(32, '\xab') + vec(1, std::string(32, '\x11')) +
                           vec(2, std::string("\x13\x01", 2)) + vec(1, std::string(1, '\0')) + vec(2, extensions);
  const std::string message = std::string(1, '\x01') + vec(3, body);
  return std::string("\x16\x03\x01", 3) + vec(2, message);
}

Harness::Harness(Config c, uint32_t capacity) : config(std::move(c)) {
  shared = std::make_unique<SharedState>(config);
  std::vector<std::string> names;
  for (const ListenConfig& l : config.listen) names.push_back(l.name);
  names.resize(kMaxListeners);
  shared->registry = std::make_unique<metrics::Registry>(1, &shared->backends, names);
  shared->workers.push_back(std::make_unique<WorkerSlot>());
  shared->workers[0]->capacity = capacity;
  const Status routes = set_up_routes(config, shared.get());
  EXPECT_TRUE(routes.ok()) << routes.message();
  const Status published = publish_config(config, 1, shared.get());
  EXPECT_TRUE(published.ok()) << published.message();
  for (size_t i = 0; i < config.listen.size(); ++i) shared->listen_bound[i] = config.listen[i].address;
  ops = std::make_unique<FakeOps>(config.buffers_per_worker, config.buffer_size);
  env = std::make_unique<Env>(*shared, 0);
  env->now_ns = 1000 * kSec;
  env->now_us = static_cast<uint32_t>(env->now_ns / 1000);
  snapshots = std::make_unique<SnapshotCache>(*shared, 0);
  driver = std::make_unique<Driver>(*env, *ops, *snapshots, capacity);
}

Harness::~Harness() = default;

uint32_t Harness::open(int slot, uint16_t listener) {
  const int id = driver->open(slot, listener, env->now_us);
  EXPECT_GE(id, 0) << "the session table is full";
  return id < 0 ? 0 : static_cast<uint32_t>(id);
}

uint32_t Harness::arrive(int slot, const std::string& from) {
  const size_t before = mark();
  const uint32_t id = open(slot);
  if (mark() > before && ops->requests[before].kind == Request::kPeerName) {
    answer_peer(ops->requests[before], ipv4(from, static_cast<uint16_t>(40000 + slot)));
  }
  return id;
}

std::vector<Request> Harness::since(size_t from) const {
  return std::vector<Request>(ops->requests.begin() + static_cast<long>(from), ops->requests.end());
}

const Request& Harness::last(Request::Kind kind) const {
  for (auto it = ops->requests.rbegin(); it != ops->requests.rend(); ++it) {
    if (it->kind == kind) return *it;
  }
  ADD_FAILURE() << "no request of kind " << static_cast<int>(kind);
  static const Request none{};
  return none;
}

const Request& Harness::last_on(Request::Kind kind, int slot) const {
  for (auto it = ops->requests.rbegin(); it != ops->requests.rend(); ++it) {
    if (it->kind == kind && it->slot == slot) return *it;
  }
  ADD_FAILURE() << "no request of kind " << static_cast<int>(kind) << " on slot " << slot;
  static const Request none{};
  return none;
}

bool Harness::has(Request::Kind kind, size_t from) const { return count(kind, from) > 0; }

size_t Harness::count(Request::Kind kind, size_t from) const {
  size_t n = 0;
  for (size_t i = from; i < ops->requests.size(); ++i) n += ops->requests[i].kind == kind;
  return n;
}

void Harness::complete(const Request& r, int res, uint32_t flags) {
  driver->on_completion(tag_of(r.data), index_of(r.data), res, flags);
}

void Harness::receive(const Request& r, const std::string& bytes, bool more) {
  uint32_t flags = more ? IORING_CQE_F_MORE : 0;
  if (bytes.empty()) return complete(r, 0, flags);
  int32_t buf = r.spec.into;
  if (buf < 0) {
    buf = ops->take_from_ring();
    if (buf < 0) return complete(r, -ENOBUFS, flags);
    flags |= IORING_CQE_F_BUFFER | (static_cast<uint32_t>(buf) << IORING_CQE_BUFFER_SHIFT);
  }
  memcpy(ops->buffer(buf), bytes.data(), bytes.size());
  complete(r, static_cast<int>(bytes.size()), flags);
}

void Harness::answer_peer(const Request& r, const sockaddr_in6& addr) {
  memcpy(r.peer, &addr, sizeof(addr));
  complete(r, 0);
}

void Harness::give_socket(const Request& r, int slot) { complete(r, slot); }

void Harness::end_batch() {
  driver->after_batch();
  driver->submit_deferred();
}

void Harness::advance(uint64_t ns) {
  env->now_ns += ns;
  env->now_us = static_cast<uint32_t>(env->now_ns / 1000);
  // Fire in deadline order, as the wheel does; a fired timer may arm another.
  for (bool fired = true; fired;) {
    fired = false;
    for (auto it = ops->timers.begin(); it != ops->timers.end(); ++it) {
      if (it->second > env->now_ns) continue;
      const uint32_t id = it->first;
      ops->timers.erase(it);
      driver->on_timer(id);
      fired = true;
      break;
    }
  }
}

uint32_t Harness::pumping(int client, int backend) {
  const uint32_t id = arrive(client);
  give_socket(last(Request::kSocket), backend);
  complete(last(Request::kConnect), 0);
  EXPECT_EQ(session(id).phase, Phase::kPump);
  return id;
}

uint64_t Harness::closed(metrics::CloseReason reason) const { return env->stats.close(reason).get(); }

}  // namespace ringlb::proxy::testing
