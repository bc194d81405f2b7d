// The c-ares channel DNS discovery resolves with, set up from [resolvers].
#pragma once

#include <ares.h>

#include <string>

#include "server/config/config.h"

namespace ringlb::discovery {

// Owns a c-ares channel (ares_destroy runs every pending callback with ARES_EDESTRUCTION).
class AresChannel {
 public:
  AresChannel() = default;
  ~AresChannel();
  AresChannel(const AresChannel&) = delete;
  AresChannel& operator=(const AresChannel&) = delete;
  // Empty on success, otherwise why.
  std::string init(const ResolversConfig& config);
  ares_channel get() const { return channel_; }
  // The servers it asks (the configured ones, or resolv.conf's).
  size_t servers() const;
  void reset();

 private:
  ares_channel channel_ = nullptr;
};

}  // namespace ringlb::discovery
