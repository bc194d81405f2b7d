// DNS discovery's counters, by name: names come and go with reloads, so unlike the fixed arrays
// of stats.h these are a map under a mutex (written by the resolver thread a few times per name
// and interval, read by scrapes; never on the data path).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace ringlb::metrics {

class DnsStats {
 public:
  struct Name {
    std::map<std::string, uint64_t> resolutions;  // by result: ok, nxdomain, timeout, ...
    uint64_t addresses = 0;                       // served now
  };

  using Key = std::pair<std::string, std::string>;  // (cluster, name)

  void resolved(const Key& name, const char* result);
  void set_addresses(const Key& name, uint64_t n);
  // A reload dropped the name: its series leave /metrics.
  void forget(const Key& name);
  std::map<Key, Name> snapshot() const;

 private:
  mutable std::mutex mu_;
  std::map<Key, Name> names_;
};

}  // namespace ringlb::metrics
