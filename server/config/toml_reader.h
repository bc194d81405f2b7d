// The pieces toml_config.cc reads a file with: a toml++ node as a settings Value, the error list
// ("FILE:LINE: KEY: message", in line order), and the reader of one table's keys. Internal to
// server/config (it exposes toml++ types).
#pragma once

#include <map>
#include <string>
#include <toml++/toml.h>
#include <utility>
#include <vector>

#include "server/config/config.h"
#include "server/config/settings.h"

namespace ringlb::toml_reader {

inline int line_of(const toml::node& n) { return static_cast<int>(n.source().begin.line); }

// A node as written, shortened, for messages: "lots" keeps its quotes, 5 does not.
std::string show(const toml::node& n);

class NodeValue : public Value {
 public:
  explicit NodeValue(const toml::node& node) : node_(node) {}
  Status get_uint(uint64_t min, uint64_t max, uint64_t* out) const override;
  Status get_bool(bool* out) const override;
  Status get_string(std::string* out, const char* expected) const override;
  Status get_strings(std::vector<std::string>* out) const override;

 private:
  const toml::node& node_;
};

// Why `key` is unknown in `scope` (`structural`: the reader's own keys there), with the likely
// intended key.
std::string unknown_key(Scope scope, const std::string& key, const std::vector<std::string>& structural);

// Collects "FILE:LINE: KEY: message" errors; hands them out in line order.
class Errors {
 public:
  explicit Errors(const std::string& path) : path_(path) {}
  void add(int line, const std::string& key, const std::string& message);
  // Every error so far, one a line in line order (ok when none); the collection starts again.
  Status take();

 private:
  std::string path_;
  std::vector<std::pair<int, std::string>> errors_;
};

// The keys of one table, applied through the settings table. Remembers where each canonical
// key was written, to refuse a key given twice under two names and to place later errors.
class KeyReader {
 public:
  KeyReader(Scope scope, std::string prefix, Errors* errors)
      : scope_(scope), prefix_(std::move(prefix)), errors_(errors) {}
  void apply(const toml::key& k, const toml::node& v, const Target& target,
             const std::vector<std::string>& structural);
  // The line a canonical key was written on, or 0.
  int line(const std::string& canonical) const;

 private:
  Scope scope_;
  std::string prefix_;
  Errors* errors_;
  std::map<std::string, int> lines_;
};

// A structural key's string value; false (and an error) when it is not a string.
bool get_text(const toml::node& v, const std::string& key, int line, Errors* errors, std::string* out);

// One element of a cluster's backends: "ADDR:PORT[,setting...]" or a table.
bool read_backend(const toml::node& node, const std::string& path, Errors* errors, BackendConfig* out);

// The global [etcd] table (endpoints, TLS files, user and password, timeouts).
void read_etcd(const toml::node& node, Errors* errors, EtcdConfig* etcd);

}  // namespace ringlb::toml_reader
