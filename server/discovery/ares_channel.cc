#include "server/discovery/ares_channel.h"

#include <netinet/in.h>

#include <cstring>
#include <vector>

namespace ringlb::discovery {

AresChannel::~AresChannel() { reset(); }

void AresChannel::reset() {
  if (channel_ != nullptr) ares_destroy(channel_);
  channel_ = nullptr;
}

std::string AresChannel::init(const ResolversConfig& config) {
  static const int library = ares_library_init(ARES_LIB_INIT_ALL);  // once, before any channel
  if (library != ARES_SUCCESS) return std::string("c-ares: ") + ares_strerror(library);
  ares_options options{};
  options.timeout = static_cast<int>(config.timeout.count());
  options.tries = static_cast<int>(config.attempts);
  const int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  if (int err = ares_init_options(&channel_, &options, mask); err != ARES_SUCCESS) {
    channel_ = nullptr;
    return std::string("c-ares: cannot start a resolver: ") + ares_strerror(err);
  }
  if (config.nameservers.empty()) return {};
  std::vector<ares_addr_port_node> nodes(config.nameservers.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Address& a = config.nameservers[i];
    ares_addr_port_node& n = nodes[i];
    n.next = i + 1 < nodes.size() ? &nodes[i + 1] : nullptr;
    n.family = a.family();
    if (a.family() == AF_INET) {
      n.addr.addr4 = reinterpret_cast<const sockaddr_in*>(a.get())->sin_addr;
    } else {
      memcpy(&n.addr.addr6, &reinterpret_cast<const sockaddr_in6*>(a.get())->sin6_addr, 16);
    }
    n.udp_port = n.tcp_port = a.port();
  }
  if (int err = ares_set_servers_ports(channel_, nodes.data()); err != ARES_SUCCESS) {
    reset();
    return std::string("c-ares: cannot use the nameservers: ") + ares_strerror(err);
  }
  return {};
}

size_t AresChannel::servers() const {
  ares_addr_port_node* list = nullptr;
  size_t n = 0;
  if (channel_ != nullptr && ares_get_servers_ports(channel_, &list) == ARES_SUCCESS) {
    for (const ares_addr_port_node* s = list; s != nullptr; s = s->next) ++n;
    ares_free_data(list);
  }
  return n;
}

}  // namespace ringlb::discovery
