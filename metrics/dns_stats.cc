#include "metrics/dns_stats.h"

namespace ringlb::metrics {

void DnsStats::resolved(const Key& name, const char* result) {
  std::lock_guard<std::mutex> lock(mu_);
  ++names_[name].resolutions[result];
}

void DnsStats::set_addresses(const Key& name, uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  names_[name].addresses = n;
}

void DnsStats::forget(const Key& name) {
  std::lock_guard<std::mutex> lock(mu_);
  names_.erase(name);
}

std::map<DnsStats::Key, DnsStats::Name> DnsStats::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return names_;
}

}  // namespace ringlb::metrics
