// The acceptor's listening sockets: made through io_uring, or inherited in a takeover.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "server/accept/acceptor.h"
#include "server/runtime/publish.h"
#include "server/uring/compat.h"

namespace ringlb {
namespace {

// The SQ entries of the acceptor ring, unless RINGLB_TEST_ACCEPTOR_SQ_ENTRIES says otherwise.
constexpr unsigned kSqEntries = 512;

}  // namespace

StatusOr<int> Acceptor::make_listener(const ListenConfig& listen, Address* bound) {
  const Address& addr = listen.address;
  const std::string name = addr.to_string();
  auto fail = [&](const char* step, int ret) {
    return Status::error("cannot listen on " + name + ": " + step + ": " + strerror(-ret));
  };
  const int slot = run_sync([&](io_uring_sqe* sqe) {
    io_uring_prep_socket_direct_alloc(sqe, addr.family(), SOCK_STREAM, 0, 0);
  });
  if (slot < 0) return fail("socket", slot);
  static const int kOne = 1;
  static const int kZero = 0;
  // A failed step closes the slot: a listener a reload could not add must not keep it.
  auto close_and_fail = [&](const char* step, int ret) {
    run_sync([&](io_uring_sqe* sqe) { io_uring_prep_close_direct(sqe, static_cast<unsigned>(slot)); });
    return fail(step, ret);
  };
  auto setopt = [&](int level, int name_opt, const int* value) {
    return run_sync([&](io_uring_sqe* sqe) {
      uring::prep_cmd_sock_direct(sqe, uring::kSocketOpSetsockopt, slot, level, name_opt,
                                  const_cast<int*>(value), sizeof(int));
    });
  };
  int ret = setopt(SOL_SOCKET, SO_REUSEADDR, &kOne);
  if (ret < 0) return close_and_fail("SO_REUSEADDR", ret);
  // Accepted sockets inherit TCP_NODELAY from the listener: no extra op per connection.
  ret = setopt(IPPROTO_TCP, TCP_NODELAY, &kOne);
  if (ret < 0) return close_and_fail("TCP_NODELAY", ret);
  if (addr.family() == AF_INET6) {
    // Dual-stack unless the listener says v6only (as HAProxy's `v6only`), and set either way:
    // the system default (net.ipv6.bindv6only) must not decide it.
    ret = setopt(IPPROTO_IPV6, IPV6_V6ONLY, listen.v6only ? &kOne : &kZero);
    if (ret < 0) return close_and_fail("IPV6_V6ONLY", ret);
  }
  ret = run_sync([&](io_uring_sqe* sqe) {
    uring::prep_bind_direct(sqe, slot, addr.get(), addr.length);
  });
  if (ret < 0) return close_and_fail("bind", ret);
  ret = run_sync([&](io_uring_sqe* sqe) {
    uring::prep_listen_direct(sqe, slot, static_cast<int>(shared_.config.backlog));
  });
  if (ret < 0) return close_and_fail("listen", ret);
  *bound = addr;
  if (addr.port() == 0) {
    // BIND does not report the port it chose; a regular fd, for this one getsockname, does.
    const int fd = run_sync([&](io_uring_sqe* sqe) {
      uring::prep_fixed_fd_install(sqe, slot, 0);
    });
    if (fd < 0) return close_and_fail("fixed_fd_install", fd);
    stats_.installed(metrics::InstallReason::k_listen_port);
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    close(fd);
    *bound = address_from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  }
  return slot;
}

Status Acceptor::open_listeners(const std::vector<InheritedListener>& inherited) {
  uring::RingOptions options;
  // RINGLB_TEST_ACCEPTOR_SQ_ENTRIES (test-only): a small SQ makes Ring::sqe() submit mid-batch.
  const uint32_t test_entries = env_count("RINGLB_TEST_ACCEPTOR_SQ_ENTRIES");
  options.entries = test_entries != 0 ? test_entries : kSqEntries;
  options.cq_entries = 8192;
  if (int ret = ring_.init(options); ret < 0) {
    return Status::failure(std::string("cannot create the acceptor ring: ") + strerror(-ret));
  }
  // Room for every listener index a reload may add.
  const size_t n = kMaxListeners;
  if (int ret = table_.init(ring_, static_cast<unsigned>(n + kAcceptSlots)); ret < 0) {
    return Status::failure(std::string("cannot register the acceptor's descriptor table: ") + strerror(-ret));
  }
  pending_.resize(n + kAcceptSlots);
  std::vector<bool> used(inherited.size(), false);
  std::vector<bool> taken_slot(n + kAcceptSlots, false);
  for (const ListenConfig& listen : shared_.config.listen) {
    const Address& addr = listen.address;
    // The same address, or for port 0 the same host: the running process's socket moves here.
    int match = -1;
    for (size_t i = 0; i < inherited.size() && match < 0; ++i) {
      if (used[i] || inherited[i].address.family() != addr.family()) continue;
      Address wanted = addr;
      if (addr.port() == 0) wanted.set_port(inherited[i].address.port());
      if (wanted.to_string() == inherited[i].address.to_string()) match = static_cast<int>(i);
    }
    Address bound;
    int slot;
    if (match >= 0) {
      used[static_cast<size_t>(match)] = true;
      slot = 0;
      while (taken_slot[static_cast<size_t>(slot)]) ++slot;
      if (int ret = table_.install_fd(slot, inherited[static_cast<size_t>(match)].fd); ret < 0) {
        return Status::failure("cannot register the listener inherited for " + addr.to_string() + ": " +
                               strerror(-ret));
      }
      bound = inherited[static_cast<size_t>(match)].address;
    } else {
      const StatusOr<int> made = make_listener(listen, &bound);
      if (!made.ok()) return made.status();  // the ring's teardown closes the listeners made so far
      slot = made.value();
    }
    taken_slot[static_cast<size_t>(slot)] = true;
    listeners_.push_back({slot, 0});
    bound_.push_back(bound);
  }
  return {};
}

Status Acceptor::open_control(const std::string& path) {
  std::vector<int> slots;
  for (const Listener& l : listeners_) slots.push_back(l.slot);
  return control_.open(path, std::move(slots), bound_);
}

void Acceptor::update_control() {
  std::vector<int> slots;
  std::vector<Address> bound;
  for (size_t i = 0; i < listeners_.size(); ++i) {
    if (listeners_[i].removed) continue;
    slots.push_back(listeners_[i].slot);
    bound.push_back(bound_[i]);
  }
  control_.set_listeners(std::move(slots), std::move(bound));
}

int Acceptor::run_sync(const std::function<void(io_uring_sqe*)>& prep) {
  constexpr uint64_t kSyncTag = 0x5359'4e43'0000'0002ULL;  // "SYNC": distinct from every Tag
  io_uring_sqe* sqe = ring_.sqe();
  prep(sqe);
  sqe->user_data = kSyncTag;
  if (int ret = ring_.submit(); ret < 0) return ret;
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    // A full SQ may have left it in the spill: submit again until it is in.
    if (ring_.spilled() != 0) ring_.submit();
    __kernel_timespec wait{};
    wait.tv_nsec = 10'000'000;
    const int ret = io_uring_wait_cqe_timeout(ring_.get(), &cqe, ring_.spilled() != 0 ? &wait : nullptr);
    if (ret == -EINTR || ret == -ETIME) continue;
    if (ret < 0) return ret;
    const io_uring_cqe copy = *cqe;
    io_uring_cqe_seen(ring_.get(), cqe);
    if (copy.user_data == kSyncTag) return copy.res;
    deferred_.push_back(copy);  // an accept, a hand-off, the control socket: the loop's
  }
}

Status Acceptor::plan_listeners(const Config& fresh, ListenerPlan* plan) {
  std::vector<ListenConfig>& configs = shared_.listener_configs;
  std::vector<bool>& live = shared_.listener_live;
  *plan = ListenerPlan{};
  plan->configs_before = configs.size();
  std::vector<bool> kept(configs.size(), false);
  std::vector<ListenerRoute> routes;
  for (const ListenConfig& l : fresh.listen) {
    int index = -1;
    for (size_t i = 0; i < configs.size() && index < 0; ++i) {
      if (live[i] && !kept[i] && configs[i].name == l.name && same_listener(configs[i], l)) {
        index = static_cast<int>(i);
      }
    }
    if (index >= 0) {
      kept[static_cast<size_t>(index)] = true;
      plan->indexes.push_back(static_cast<uint16_t>(index));
      continue;
    }
    const size_t next = configs.size() + plan->added.size();
    if (next >= kMaxListeners) {
      return Status::error("listener '" + l.name + "': no listener index left (" + std::to_string(kMaxListeners) +
                           " over the life of the process; restart, or upgrade with --takeover)");
    }
    ListenerRoute route;
    RINGLB_RETURN_IF_ERROR(make_route(l, &shared_, &route));
    routes.push_back(std::move(route));
    plan->indexes.push_back(static_cast<uint16_t>(next));
    plan->added.push_back(static_cast<uint16_t>(next));
  }
  for (size_t i = 0; i < configs.size(); ++i) {
    if (live[i] && !kept[i]) plan->removed.push_back(static_cast<uint16_t>(i));
  }
  // Nothing accepts on the new indexes yet: their entries are written before anything can read
  // them, and the policies published next (by the caller) name them.
  size_t a = 0;
  for (size_t i = 0; i < fresh.listen.size(); ++i) {
    const uint16_t index = plan->indexes[i];
    if (index < plan->configs_before) continue;
    shared_.routes[index] = std::move(routes[a++]);
    shared_.listen_bound[index] = fresh.listen[i].address;
    shared_.registry->set_listener_name(index, fresh.listen[i].name);
    configs.push_back(fresh.listen[i]);
    live.push_back(true);
  }
  for (uint16_t index : plan->removed) live[index] = false;
  return {};
}

void Acceptor::cancel_listeners(const ListenerPlan& plan) {
  shared_.listener_configs.resize(plan.configs_before);
  shared_.listener_live.resize(plan.configs_before);
  for (uint16_t index : plan.removed) shared_.listener_live[index] = true;
}

std::vector<std::string> Acceptor::apply_listeners(const ListenerPlan& plan) {
  std::vector<std::string> lines;
  // Removed first, so that a changed listener can bind its address again. Its multishot accept
  // is cancelled (its last completion, without F_MORE, finds it removed and does not re-arm)
  // and its slot closed: new clients are refused; those already handed off drain in the workers.
  for (uint16_t index : plan.removed) {
    Listener& l = listeners_[index];
    run_sync([&](io_uring_sqe* sqe) {
      io_uring_prep_cancel_fd(sqe, l.slot, IORING_ASYNC_CANCEL_FD_FIXED | IORING_ASYNC_CANCEL_ALL);
    });
    run_sync([&](io_uring_sqe* sqe) { io_uring_prep_close_direct(sqe, static_cast<unsigned>(l.slot)); });
    l.removed = true;
    lines.push_back("listener '" + shared_.listener_configs[index].name + "' (" + bound_[index].to_string() +
                    ") removed: no longer accepting; its connections drain for up to " +
                    std::to_string(shared_.config.drain_timeout.count()) + "ms");
  }
  for (uint16_t index : plan.added) {
    const ListenConfig& listen = shared_.listener_configs[index];
    Address bound;
    const StatusOr<int> slot = make_listener(listen, &bound);
    listeners_.resize(std::max<size_t>(listeners_.size(), index + 1u));
    bound_.resize(listeners_.size());
    if (!slot.ok()) {
      // That listener only: the others are applied. Its index stays unused (never accepting);
      // the next reload that names it tries again under a new one.
      listeners_[index].removed = true;
      shared_.listener_live[index] = false;
      bound_[index] = listen.address;
      lines.push_back("listener '" + listen.name + "' not added: " + slot.status().message());
      continue;
    }
    listeners_[index].slot = slot.value();
    bound_[index] = bound;
    // The port a port-0 listener got: what a PROXY header names. Written before it accepts.
    shared_.listen_bound[index] = bound;
    arm_accept(index);
    lines.push_back("listener '" + listen.name + "' added: listening on " + bound.to_string());
  }
  update_control();
  return lines;
}

}  // namespace ringlb
