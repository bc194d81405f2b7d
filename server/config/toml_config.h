// The TOML config file (--config FILE), read with toml++. Its top level holds the process-wide
// settings and the defaults of every cluster and listener key; [cluster.NAME] tables hold pools
// of backends; [[listener]] tables say where clients are accepted and which cluster (or SNI
// routes) serve them. Keys and value syntaxes are the flags' (settings.h). Every error reads
// "FILE:LINE: KEY: message"; the schema is in docs/configuration.md and examples/ringlb.toml.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "server/base/error.h"
#include "server/config/config.h"
#include "server/config/settings.h"

namespace ringlb {

class TomlFile {
 public:
  TomlFile();
  ~TomlFile();
  TomlFile(const TomlFile&) = delete;
  TomlFile& operator=(const TomlFile&) = delete;

  // Reads and parses `path`. One error when it cannot be read or is not TOML (then the error
  // names the line of the syntax error).
  Status load(const std::string& path);
  // The same for text already read; `path` names it in errors (the fuzzer's entry point).
  Status load_text(const std::string& text, const std::string& path);

  // Its top-level keys, onto *d (the command line's flags go on top of them afterwards). Every
  // error found, one a line, in line order.
  Status apply_top(Defaults* d) const;

  // Whether it has any [cluster.NAME] or [[listener]] table. Without either, --listen and
  // --backend supply them, as without a file.
  bool has_services() const;

  // Its clusters and listeners into config->clusters and config->listen, each starting from
  // the defaults in `d` (global allow/deny from d.config), with every cross-check: listeners
  // naming clusters that exist, one of cluster or sni, unique names and addresses, backends in
  // every cluster. Every error found, one a line, in line order.
  Status build(const Defaults& d, Config* config) const;

 private:
  struct Doc;
  std::unique_ptr<Doc> doc_;
};

}  // namespace ringlb
