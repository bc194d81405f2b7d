// The settings table: every key the flags and the file share, with its level and how its value
// is set (settings_table.cc). settings.cc looks keys up in it. Internal to server/config.
#pragma once

#include <span>

#include "server/base/error.h"
#include "server/config/settings.h"

namespace ringlb::settings_table {

// Where an entry may be written. kCluster and kListenerDefault keys may also be written at the
// top level, where they set the defaults.
// kClusterOnly keys have no meaningful default (a prefix is one cluster's), so not at the top.
enum class Level { kGlobal, kCluster, kClusterOnly, kListenerDefault, kListener, kBackend, kEtcd, kResolvers };

struct Entry {
  Level level;
  const char* name;
  const char* alias;  // the same setting under a second name, or nullptr
  Status (*apply)(const Value& v, const Target& t);
};

// Every entry, in documentation order.
std::span<const Entry> entries();

}  // namespace ringlb::settings_table
