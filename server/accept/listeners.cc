// The acceptor's listening sockets: made through io_uring, or inherited in a takeover.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "server/accept/acceptor.h"
#include "server/uring/compat.h"

namespace ringlb {
namespace {

// The SQ entries of the acceptor ring, unless RINGLB_TEST_ACCEPTOR_SQ_ENTRIES says otherwise.
constexpr unsigned kSqEntries = 512;

}  // namespace

int Acceptor::make_listener(const ListenConfig& listen, Address* bound, std::string* error) {
  const Address& addr = listen.address;
  const std::string name = addr.to_string();
  auto fail = [&](const char* step, int ret) {
    *error = "cannot listen on " + name + ": " + step + ": " + strerror(-ret);
    return ret;
  };
  const int slot = uring::run_one(ring_, [&](io_uring_sqe* sqe) {
    io_uring_prep_socket_direct_alloc(sqe, addr.family(), SOCK_STREAM, 0, 0);
  });
  if (slot < 0) return fail("socket", slot);
  static const int kOne = 1;
  static const int kZero = 0;
  auto setopt = [&](int level, int name_opt, const int* value) {
    return uring::run_one(ring_, [&](io_uring_sqe* sqe) {
      uring::prep_cmd_sock_direct(sqe, uring::kSocketOpSetsockopt, slot, level, name_opt,
                                  const_cast<int*>(value), sizeof(int));
    });
  };
  int ret = setopt(SOL_SOCKET, SO_REUSEADDR, &kOne);
  if (ret < 0) return fail("SO_REUSEADDR", ret);
  // Accepted sockets inherit TCP_NODELAY from the listener: no extra op per connection.
  ret = setopt(IPPROTO_TCP, TCP_NODELAY, &kOne);
  if (ret < 0) return fail("TCP_NODELAY", ret);
  if (addr.family() == AF_INET6) {
    // Dual-stack unless the listener says v6only (as HAProxy's `v6only`), and set either way:
    // the system default (net.ipv6.bindv6only) must not decide it.
    ret = setopt(IPPROTO_IPV6, IPV6_V6ONLY, listen.v6only ? &kOne : &kZero);
    if (ret < 0) return fail("IPV6_V6ONLY", ret);
  }
  ret = uring::run_one(ring_, [&](io_uring_sqe* sqe) {
    uring::prep_bind_direct(sqe, slot, addr.get(), addr.length);
  });
  if (ret < 0) return fail("bind", ret);
  ret = uring::run_one(ring_, [&](io_uring_sqe* sqe) {
    uring::prep_listen_direct(sqe, slot, static_cast<int>(shared_.config.backlog));
  });
  if (ret < 0) return fail("listen", ret);
  *bound = addr;
  if (addr.port() == 0) {
    // BIND does not report the port it chose; a regular fd, for this one getsockname, does.
    const int fd = uring::run_one(ring_, [&](io_uring_sqe* sqe) {
      uring::prep_fixed_fd_install(sqe, slot, 0);
    });
    if (fd < 0) return fail("fixed_fd_install", fd);
    stats_.installed(metrics::InstallReason::k_listen_port);
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    close(fd);
    *bound = address_from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  }
  return slot;
}

int Acceptor::open_listeners(const std::vector<InheritedListener>& inherited, std::string* error) {
  uring::RingOptions options;
  // RINGLB_TEST_ACCEPTOR_SQ_ENTRIES (test-only): a small SQ makes Ring::sqe() submit mid-batch.
  const uint32_t test_entries = env_count("RINGLB_TEST_ACCEPTOR_SQ_ENTRIES");
  options.entries = test_entries != 0 ? test_entries : kSqEntries;
  options.cq_entries = 8192;
  if (int ret = ring_.init(options); ret < 0) {
    *error = std::string("cannot create the acceptor ring: ") + strerror(-ret);
    return ret;
  }
  const size_t n = shared_.config.listen.size();
  if (int ret = table_.init(ring_, static_cast<unsigned>(n + kAcceptSlots)); ret < 0) {
    *error = std::string("cannot register the acceptor's descriptor table: ") + strerror(-ret);
    return ret;
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
        *error = "cannot register the listener inherited for " + addr.to_string() + ": " + strerror(-ret);
        return ret;
      }
      bound = inherited[static_cast<size_t>(match)].address;
    } else {
      slot = make_listener(listen, &bound, error);
      if (slot < 0) return slot;  // the ring's teardown closes the listeners made so far
    }
    taken_slot[static_cast<size_t>(slot)] = true;
    listeners_.push_back({slot, 0});
    bound_.push_back(bound);
  }
  return 0;
}

int Acceptor::open_control(const std::string& path, std::string* error) {
  std::vector<int> slots;
  for (const Listener& l : listeners_) slots.push_back(l.slot);
  return control_.open(path, std::move(slots), bound_, error);
}

}  // namespace ringlb
