#include "server/config/toml_reader.h"

#include <algorithm>
#include <sstream>

namespace ringlb::toml_reader {

std::string show(const toml::node& n) {
  std::ostringstream out;
  if (const auto* s = n.as_string()) {
    out << '"' << s->get() << '"';  // as most files write it (toml++ would print 'lots')
  } else {
    n.visit([&](auto&& v) { out << v; });
  }
  // toml++ prints a long array over several lines: one line here, or the error's later lines
  // would not start with its FILE:LINE (each is a line of its own in Status::lines()).
  // A line break and the indentation after it become one space; a string's own spaces stay.
  const std::string printed = out.str();
  std::string text;
  for (size_t i = 0; i < printed.size(); ++i) {
    if (printed[i] != '\n' && printed[i] != '\r') {
      text.push_back(printed[i]);
      continue;
    }
    while (i + 1 < printed.size() && (printed[i + 1] == ' ' || printed[i + 1] == '\t' || printed[i + 1] == '\n')) ++i;
    if (!text.empty() && text.back() != ' ') text.push_back(' ');
  }
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

Status NodeValue::get_uint(uint64_t min, uint64_t max, uint64_t* out) const {
  const auto* n = node_.as_integer();
  // Compared as signed first: a negative number must not wrap into range.
  if (n == nullptr || n->get() < 0 || static_cast<uint64_t>(n->get()) < min ||
      static_cast<uint64_t>(n->get()) > max) {
    return Status::error("expected a whole number from " + std::to_string(min) + " to " + std::to_string(max));
  }
  *out = static_cast<uint64_t>(n->get());
  return {};
}

Status NodeValue::get_bool(bool* out) const {
  const auto* b = node_.as_boolean();
  if (b == nullptr) return Status::error("expected true or false");
  *out = b->get();
  return {};
}

Status NodeValue::get_string(std::string* out, const char* expected) const {
  const auto* s = node_.as_string();
  if (s == nullptr) return Status::error(std::string("expected ") + expected + " (a string)");
  *out = s->get();
  return {};
}

Status NodeValue::get_strings(std::vector<std::string>* out) const {
  out->clear();
  if (const auto* s = node_.as_string()) {
    out->push_back(s->get());
    return {};
  }
  const toml::array* a = node_.as_array();
  for (size_t i = 0; a != nullptr && i < a->size(); ++i) {
    const auto* s = a->get(i)->as_string();
    if (s == nullptr) break;
    out->push_back(s->get());
  }
  if (a == nullptr || out->size() != a->size()) return Status::error("expected an array of strings");
  return {};
}

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string unknown_key(Scope scope, const std::string& key, const std::vector<std::string>& structural) {
  if (scope == Scope::kTop && key == "listen") {
    return "unknown key (the INI form is gone: a listener is a [[listener]] table with address = \"ADDR:PORT\")";
  }
  if (scope == Scope::kTop && key == "backend") {
    return "unknown key (the INI form is gone: backends go in a [cluster.NAME] table, backends = [\"ADDR:PORT\"])";
  }
  if (scope == Scope::kTop && (key == "takeover" || key == "config")) {
    return "unknown key (--" + key + " is a command-line flag only)";
  }
  std::vector<std::string> known = keys_of(scope);
  known.insert(known.end(), structural.begin(), structural.end());
  std::string best;
  size_t best_distance = 3;  // suggest only near misses
  for (const std::string& k : known) {
    const size_t d = edit_distance(key, k);
    if (d < best_distance) {
      best_distance = d;
      best = k;
    }
  }
  return best.empty() ? "unknown key" : "unknown key (did you mean '" + best + "'?)";
}

namespace {

// One error is one line: a value or key quoted from the file may hold line breaks (an array as
// toml++ prints it, an escaped "\n" in a string) or other control characters. Runs of
// whitespace become one space; other control characters are written as \xHH.
std::string one_line(const std::string& text) {
  std::string out;
  bool space = false;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    if (u < 0x20 || u == 0x7f) {
      static const char* const kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

void Errors::add(int line, const std::string& key, const std::string& message) {
  errors_.push_back({line, path_ + ":" + std::to_string(line) + ": " + one_line(key + ": " + message)});
}

Status Errors::take() {
  std::stable_sort(errors_.begin(), errors_.end(), [](auto& a, auto& b) { return a.first < b.first; });
  Status all;
  for (auto& e : errors_) all.add(Status::error(e.second));
  errors_.clear();
  return all;
}

void KeyReader::apply(const toml::key& k, const toml::node& v, const Target& target,
                       const std::vector<std::string>& structural) {
  const std::string key(k.str());
  const int line = static_cast<int>(k.source().begin.line);
  const char* canonical = canonical_key(scope_, key);
  if (canonical == nullptr) {
    errors_->add(line, prefix_ + key, unknown_key(scope_, key, structural));
    return;
  }
  if (auto it = lines_.find(canonical); it != lines_.end()) {
    errors_->add(line, prefix_ + key,
                 "the same setting as " + std::string(canonical) + " (or its other name) on line " +
                     std::to_string(it->second) + "; give one");
    return;
  }
  lines_[canonical] = line;
  if (Status s = apply_setting(scope_, key, NodeValue(v), target); !s.ok()) {
    errors_->add(line_of(v), prefix_ + key, "invalid value " + show(v) + ": " + s.message());
  }
}

int KeyReader::line(const std::string& canonical) const {
  auto it = lines_.find(canonical);
  return it == lines_.end() ? 0 : it->second;
}

bool get_text(const toml::node& v, const std::string& key, int line, Errors* errors, std::string* out) {
  if (const auto* s = v.as_string()) {
    *out = s->get();
    return true;
  }
  errors->add(line, key, "invalid value " + show(v) + ": expected a string");
  return false;
}

bool read_backend(const toml::node& node, const std::string& path, Errors* errors, BackendConfig* out) {
  const int line = line_of(node);
  if (const auto* s = node.as_string()) {
    if (Status parsed = parse_backend(s->get(), out); !parsed.ok()) {
      errors->add(line, path, "invalid backend " + show(node) + ": " + parsed.message());
      return false;
    }
    return true;
  }
  const toml::table* t = node.as_table();
  if (t == nullptr) {
    errors->add(line, path, "expected \"ADDR:PORT[,setting...]\" or a table {address = \"ADDR:PORT\", ...}");
    return false;
  }
  const toml::node* address = t->get("address");
  std::string text;
  if (address == nullptr) {
    errors->add(line, path, "address is required");
    return false;
  }
  if (!get_text(*address, path + ".address", line_of(*address), errors, &text)) return false;
  const Status parsed = text.find(',') != std::string::npos
                            ? Status::error("settings go in their own keys (weight = 2, ...)")
                            : parse_backend(text, out);
  if (!parsed.ok()) {
    errors->add(line_of(*address), path + ".address", "invalid value " + show(*address) + ": " + parsed.message());
    return false;
  }
  if (out->dns.kind == DnsName::Kind::kSrv && t->contains("weight")) {
    errors->add(line_of(*t->get("weight")), path + ".weight",
                "an srv: backend takes its weights from the SRV records (no weight)");
    return false;
  }
  KeyReader keys(Scope::kBackend, path + ".", errors);
  Target target;
  target.backend = out;
  for (auto&& [k, v] : *t) {
    if (k.str() != "address") keys.apply(k, v, target, {"address"});
  }
  return true;
}

// The global [etcd] table onto *etcd, with the checks that need the whole table.
void read_etcd(const toml::node& node, Errors* errors, EtcdConfig* etcd) {
  const toml::table* t = node.as_table();
  if (t == nullptr) {
    errors->add(line_of(node), "etcd", "expected an [etcd] table");
    return;
  }
  KeyReader keys(Scope::kEtcd, "etcd.", errors);
  Target target;
  target.etcd = etcd;
  for (auto&& [k, v] : *t) keys.apply(k, v, target, {});
  if (keys.line("endpoints") == 0) {
    errors->add(line_of(node), "etcd.endpoints", "required (endpoints = [\"http://127.0.0.1:2379\"])");
  }
  if ((keys.line("cert-file") != 0) != (keys.line("key-file") != 0)) {
    const char* given = keys.line("cert-file") != 0 ? "cert-file" : "key-file";
    errors->add(keys.line(given), std::string("etcd.") + given, "needs both cert-file and key-file");
  }
  if (keys.line("password") != 0 && keys.line("user") == 0) {
    errors->add(keys.line("password"), "etcd.password", "only used with user");
  }
  if (etcd->reconnect_min > etcd->reconnect_max) {
    const int at = keys.line("reconnect-min") != 0 ? keys.line("reconnect-min") : keys.line("reconnect-max");
    errors->add(at, keys.line("reconnect-min") != 0 ? "etcd.reconnect-min" : "etcd.reconnect-max",
                "reconnect-min is above reconnect-max");
  }
}

}  // namespace ringlb::toml_reader
