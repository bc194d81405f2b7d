#include "server/discovery/cluster_publisher.h"

#include <set>

#include "server/base/log.h"
#include "server/runtime/publish.h"

namespace ringlb::discovery {

const char* source_name(Source s) {
  switch (s) {
    case Source::kFile: return "file";
    case Source::kDns: return "dns";
    case Source::kEtcd: return "etcd";
  }
  return "?";
}

const char* admin_name(Admin a) {
  switch (a) {
    case Admin::kEnabled: return "enabled";
    case Admin::kDrain: return "drain";
    case Admin::kDisabled: return "maint";
  }
  return "?";
}

const ClusterConfig* ClusterPublisher::file_cluster_locked(const std::string& name) const {
  for (const ClusterConfig& c : file_.clusters) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

Config ClusterPublisher::combine_locked() const {
  Config out = file_;
  for (ClusterConfig& c : out.clusters) {
    // A backend named twice (a DNS name that resolves to a file backend's address, two names
    // with one address) is one backend: the first wins, file before discovery, then by key.
    std::set<std::string> names;
    for (const BackendConfig& b : c.backends) names.insert(b.text);
    for (auto it = discovered_.lower_bound({c.name, ""}); it != discovered_.end() && it->first.first == c.name;
         ++it) {
      for (const BackendConfig& b : it->second.backends) {
        if (names.insert(b.text).second) c.backends.push_back(b);
      }
    }
  }
  return out;
}

std::vector<std::string> ClusterPublisher::reconcile_overrides_locked(const Config& combined) {
  std::vector<std::string> notes;
  std::map<Key, uint32_t> configured;
  for (const ClusterConfig& c : combined.clusters) {
    for (const BackendConfig& b : c.backends) configured[{c.name, b.text}] = b.weight;
  }
  for (auto it = overrides_.begin(); it != overrides_.end();) {
    auto found = configured.find(it->first);
    if (found == configured.end()) {
      notes.push_back("runtime state of " + it->first.first + "/" + it->first.second +
                      " dropped: it left the cluster");
      it = overrides_.erase(it);
      continue;
    }
    Override& o = it->second;
    if (o.weight && found->second != o.configured) {
      notes.push_back("runtime weight " + std::to_string(*o.weight) + " of " + it->first.first + "/" +
                      it->first.second + " dropped: its configured weight changed from " +
                      std::to_string(o.configured) + " to " + std::to_string(found->second));
      o.weight.reset();
    }
    it = o.empty() ? overrides_.erase(it) : std::next(it);
  }
  return notes;
}

void ClusterPublisher::apply_overrides_locked(Config* combined) const {
  for (ClusterConfig& c : combined->clusters) {
    for (BackendConfig& b : c.backends) {
      auto o = overrides_.find({c.name, b.text});
      if (o == overrides_.end()) continue;
      if (o->second.weight) b.weight = *o->second.weight;
      b.admin = o->second.admin;
      if (o->second.admin != Admin::kEnabled) b.weight = 0;
      // Maintenance: HAProxy stops checking a disabled server; it comes back as it was checked.
      if (o->second.admin == Admin::kDisabled) b.health_interval = Millis{0};
    }
  }
}

std::string ClusterPublisher::publish_locked(const Config& file, std::vector<std::string>* changed,
                                             const std::vector<uint16_t>* indexes, bool policies) {
  Config previous = std::move(file_);
  const bool had_file = have_file_;
  file_ = file;
  have_file_ = true;
  Config combined = combine_locked();
  const std::map<Key, Override> previous_overrides = overrides_;
  const std::vector<std::string> notes = reconcile_overrides_locked(combined);
  Config merged = combined;
  apply_overrides_locked(&merged);
  // The TLS files are read first: a broken one refuses the whole config, nothing published.
  TlsSets tls;
  std::string error = policies ? build_tls(merged, *shared_, indexes, &tls).message() : std::string();
  if (error.empty()) error = publish_clusters(merged, ++version_, shared_, changed).message();
  if (!error.empty()) {
    file_ = std::move(previous);
    have_file_ = had_file;
    overrides_ = previous_overrides;
    return error;
  }
  if (policies) {
    publish_policies(merged, version_, shared_, indexes, &tls);
    for (const std::string& w : tls.warnings) log(LogLevel::kWarning, "%s", w.c_str());
  }
  // Forget the lists of clusters the file dropped.
  for (auto it = discovered_.begin(); it != discovered_.end();) {
    it = file_cluster_locked(it->first.first) != nullptr ? std::next(it) : discovered_.erase(it);
  }
  combined_ = std::move(combined);
  for (const std::string& note : notes) log(LogLevel::kInfo, "%s", note.c_str());
  effective_ = std::move(merged);
  return {};
}

std::string ClusterPublisher::publish_file(const Config& config, std::vector<std::string>* changed,
                                           const std::vector<uint16_t>* indexes) {
  std::lock_guard<std::mutex> lock(mu_);
  return publish_locked(config, changed, indexes, /*policies=*/true);
}

std::string ClusterPublisher::set_discovered(const std::string& cluster, const std::string& key, Source source,
                                             std::vector<BackendConfig> backends, bool* changed) {
  std::lock_guard<std::mutex> lock(mu_);
  if (changed != nullptr) *changed = false;
  if (!have_file_) return "not serving yet";
  if (file_cluster_locked(cluster) == nullptr) return "unknown cluster '" + cluster + "'";
  const Key k{cluster, key};
  std::optional<Discovered> previous;
  if (auto it = discovered_.find(k); it != discovered_.end()) previous = std::move(it->second);
  if (backends.empty()) {
    discovered_.erase(k);
  } else {
    discovered_[k] = Discovered{source, std::move(backends)};
  }
  std::vector<std::string> published;
  const Config file = file_;
  std::string error = publish_locked(file, &published, nullptr, /*policies=*/false);
  if (!error.empty()) {
    if (previous) {
      discovered_[k] = std::move(*previous);
    } else {
      discovered_.erase(k);
    }
    return error;
  }
  if (changed != nullptr) *changed = !published.empty();
  return {};
}

std::string ClusterPublisher::set_override(const std::string& cluster, const std::string& backend,
                                           const Override& o) {
  std::lock_guard<std::mutex> lock(mu_);
  const ClusterConfig* found = nullptr;
  for (const ClusterConfig& c : combined_.clusters) {
    if (c.name == cluster) found = &c;
  }
  if (found == nullptr) return "unknown cluster '" + cluster + "'";
  const BackendConfig* has = nullptr;
  for (const BackendConfig& b : found->backends) has = b.text == backend ? &b : has;
  if (has == nullptr) return "cluster '" + cluster + "' has no backend '" + backend + "'";
  const Key k{cluster, backend};
  std::optional<Override> previous;
  if (auto it = overrides_.find(k); it != overrides_.end()) previous = it->second;
  if (o.empty()) {
    overrides_.erase(k);
  } else {
    overrides_[k] = o;
    overrides_[k].configured = has->weight;
  }
  const Config file = file_;
  std::string error = publish_locked(file, nullptr, nullptr, /*policies=*/false);
  if (!error.empty()) {
    if (previous) {
      overrides_[k] = *previous;
    } else {
      overrides_.erase(k);
    }
  }
  return error;
}

Override ClusterPublisher::override_of(const std::string& cluster, const std::string& backend) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = overrides_.find({cluster, backend});
  return it == overrides_.end() ? Override{} : it->second;
}

std::vector<BackendView> ClusterPublisher::backends() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<BackendView> out;
  for (size_t i = 0; i < effective_.clusters.size(); ++i) {
    const ClusterConfig& c = effective_.clusters[i];
    const ClusterConfig* file = file_cluster_locked(c.name);
    for (size_t j = 0; j < c.backends.size(); ++j) {
      const BackendConfig& b = c.backends[j];
      BackendView v;
      v.cluster = c.name;
      v.name = b.text;
      v.weight = b.weight;
      v.configured_weight = combined_.clusters[i].backends[j].weight;
      v.admin = b.admin;
      bool found = false;
      if (file != nullptr) {
        for (const BackendConfig& f : file->backends) found = found || f.text == b.text;
      }
      v.origin = "file";
      for (auto it = discovered_.lower_bound({c.name, ""});
           !found && it != discovered_.end() && it->first.first == c.name; ++it) {
        for (const BackendConfig& d : it->second.backends) {
          if (d.text != b.text) continue;
          found = true;
          v.source = it->second.source;
          v.origin = it->first.second;
          break;
        }
      }
      if (auto o = overrides_.find({c.name, b.text}); o != overrides_.end()) v.runtime_weight = o->second.weight;
      out.push_back(std::move(v));
    }
  }
  return out;
}

Config ClusterPublisher::effective() const {
  std::lock_guard<std::mutex> lock(mu_);
  return effective_;
}

uint64_t ClusterPublisher::version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return version_;
}

}  // namespace ringlb::discovery
