// Every setting the command line and the TOML file share, in one table (settings_table.cc): each
// key's level, value syntax and limits. A flag and the file key of the same name go through the
// same entry, so they accept the same values. A duration's 0 means "off" where the setting times
// something that may be absent, and is refused everywhere else (setters.h: Zero).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server/base/error.h"
#include "server/config/config.h"

namespace ringlb {

// A value to set, from a TOML node or from a flag's text. Each getter fails when the value is of
// the wrong type (or, for a number, out of range).
class Value {
 public:
  virtual ~Value() = default;
  virtual Status get_uint(uint64_t min, uint64_t max, uint64_t* out) const = 0;
  virtual Status get_bool(bool* out) const = 0;
  // `expected` names what the string holds, for the type error ("a duration such as \"5s\"").
  virtual Status get_string(std::string* out, const char* expected) const = 0;
  // An array of strings; a single string is a list of one.
  virtual Status get_strings(std::vector<std::string>* out) const = 0;
};

// A flag's value(s) as typed: every getter parses text.
class FlagValue : public Value {
 public:
  explicit FlagValue(std::vector<std::string> texts) : texts_(std::move(texts)) {}
  Status get_uint(uint64_t min, uint64_t max, uint64_t* out) const override;
  Status get_bool(bool* out) const override;
  Status get_string(std::string* out, const char* expected) const override;
  Status get_strings(std::vector<std::string>* out) const override;
  // The value as typed (the last, for a repeated flag), for messages.
  const std::string& text() const { return texts_.back(); }

 private:
  std::vector<std::string> texts_;
};

// What the top level of a file and the flags set: the process-wide settings, and the defaults
// every cluster and listener starts from (a cluster or listener key given at the top level is
// that key's default).
struct Defaults {
  Config config;
  ClusterConfig cluster;
  ListenConfig listener;
  bool queue_timeout_set = false;  // else each cluster's queue timeout is its connect timeout
};

// The built-in defaults: workers = number of cores, metrics on 127.0.0.1:9090.
Defaults make_defaults();

// Where a key is written: the top level (or a flag), a [cluster.NAME] table, a [[listener]]
// table, a backend table in a cluster's backends, the [etcd] table, the [resolvers] table (whose
// keys write into Target::top).
enum class Scope { kTop, kCluster, kListener, kBackend, kEtcd, kResolvers };

// The canonical name of `key` in `scope` (the key itself, or the one an alias stands for);
// nullptr when the scope has no such setting. Structural keys (cluster, listener, backends,
// address, name, sni, sni-default) are the readers' own and are not here.
const char* canonical_key(Scope scope, std::string_view key);

// Every canonical key of a scope, for "did you mean" hints and documentation.
std::vector<std::string> keys_of(Scope scope);

// What a setting writes into: `top` for kTop (which also holds the cluster and listener
// defaults), or the one object of the scope.
struct Target {
  Defaults* top = nullptr;
  ClusterConfig* cluster = nullptr;
  ListenConfig* listener = nullptr;
  BackendConfig* backend = nullptr;
  EtcdConfig* etcd = nullptr;
};

// Sets what `key` (canonical or alias) names in `scope`. An error says why the value is bad (or
// that the key is unknown, which callers check first with canonical_key).
Status apply_setting(Scope scope, std::string_view key, const Value& value, const Target& target);

// A setting whose value is fine alone but not with the rest of its cluster.
struct Problem {
  int backend = -1;     // index into the cluster's backends, or -1: the cluster itself
  const char* key;      // the setting at fault
  std::string value;    // its value, as text
  std::string why;
};

// Checks that need a whole cluster: a Maglev table size that is prime, re-resolve bounds in
// order, a health check that can run as configured.
std::vector<Problem> check_cluster(const ClusterConfig& cluster);

}  // namespace ringlb
