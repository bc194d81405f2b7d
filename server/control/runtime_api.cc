#include "server/control/runtime_api.h"

#include "server/control/backends_table.h"
#include "server/base/log.h"

namespace ringlb::control {
namespace {

std::string describe(const discovery::ClusterPublisher& publisher, const Command& c) {
  for (const discovery::BackendView& v : publisher.backends()) {
    if (v.cluster != c.cluster || v.name != c.backend) continue;
    BackendStatus s;
    s.admin = v.admin;
    s.weight = v.weight;
    s.configured_weight = v.configured_weight;
    s.runtime_weight = v.runtime_weight;
    return quote_word(v.cluster) + " " + quote_word(v.name) + ": weight " + weight_text(s) + ", " +
           discovery::admin_name(v.admin);
  }
  return quote_word(c.cluster) + " " + quote_word(c.backend) + ": gone";  // removed meanwhile
}

}  // namespace

Status apply_backend_command(discovery::ClusterPublisher& publisher, const Command& c, std::string* done) {
  if (!c.changes_backend()) return Status::error(std::string(verb_name(c.verb)) + " does not change a backend");
  discovery::Override o = publisher.override_of(c.cluster, c.backend);
  switch (c.verb) {
    case Verb::kSetWeight:
      o.weight = c.weight;  // empty: back to the configured weight
      break;
    case Verb::kDrain:
      o.admin = discovery::Admin::kDrain;
      break;
    case Verb::kDisable:
      o.admin = discovery::Admin::kDisabled;
      break;
    case Verb::kEnable:
      o.admin = discovery::Admin::kEnabled;
      break;
    default:
      break;
  }
  if (std::string error = publisher.set_override(c.cluster, c.backend, o); !error.empty()) {
    return Status::error(error);
  }
  *done = describe(publisher, c);
  return {};
}

std::string overrides_as_commands(const discovery::ClusterPublisher& publisher) {
  std::string out;
  for (const discovery::BackendView& v : publisher.backends()) {
    Command c;
    c.cluster = v.cluster;
    c.backend = v.name;
    if (v.runtime_weight) {
      c.verb = Verb::kSetWeight;
      c.weight = v.runtime_weight;
      out += format_command(c) + "\n";
    }
    if (v.admin != discovery::Admin::kEnabled) {
      c.verb = v.admin == discovery::Admin::kDrain ? Verb::kDrain : Verb::kDisable;
      out += format_command(c) + "\n";
    }
  }
  return out;
}

size_t restore_overrides(discovery::ClusterPublisher& publisher, const std::string& text) {
  size_t applied = 0;
  for (size_t at = 0; at < text.size();) {
    const size_t end = std::min(text.find('\n', at), text.size());
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    if (line.empty()) continue;
    Command c;
    Status s = parse_command(line, &c);
    if (s.ok() && !c.changes_backend()) s = Status::error("not a backend command");
    std::string done;
    if (s.ok()) s = apply_backend_command(publisher, c, &done);
    if (!s.ok()) {
      log(LogLevel::kWarning, "takeover: runtime state '%s' not carried over: %s", line.c_str(), s.message().c_str());
      continue;
    }
    log(LogLevel::kInfo, "takeover: runtime state carried over: %s", done.c_str());
    ++applied;
  }
  return applied;
}

}  // namespace ringlb::control
