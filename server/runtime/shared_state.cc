#include "server/runtime/shared_state.h"

namespace ringlb {

SharedState::SharedState(const Config& c) : config(c) {
  // A freed id has no reader left (balancer/snapshot.h): its counts start again from zero for
  // whichever backend gets it next, and its address is cleared.
  backends.set_on_free([this](uint32_t id) {
    backend_addresses[id] = Address{};
    {
      std::lock_guard<std::mutex> lock(check_failures_mu);
      last_check_failure[id].clear();
    }
    if (registry == nullptr) return;
    for (const auto& w : registry->workers) w->backends[id].reset();
    registry->checks[id].reset();
  });
}

SharedState::~SharedState() {
  // The snapshots (members destroyed after `registry`) release their ids last.
  backends.set_on_free(nullptr);
}

}  // namespace ringlb
