#include "server/config/tls_config.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <memory>

namespace ringlb::toml_reader {

const std::vector<std::string> kListenerTlsKeys = {
    "certificates", "alpn", "min-version", "ciphers", "ciphersuites", "client-ca",
    "client-verify", "handshake-timeout", "session-tickets", "ticket-keys-file"};
const std::vector<std::string> kClusterTlsKeys = {"sni", "verify", "ca-file", "cert", "key", "alpn"};

namespace {

std::string list(const std::vector<std::string>& keys) {
  std::string out;
  for (size_t i = 0; i < keys.size(); ++i) out += (out.empty() ? "" : ", ") + keys[i];
  return out;
}

// A string that must not be empty (a path, a cipher list).
bool get_nonempty(const toml::node& v, const std::string& key, Errors* errors, std::string* out) {
  if (!get_text(v, key, line_of(v), errors, out)) return false;
  if (out->empty()) {
    errors->add(line_of(v), key, "must not be empty");
    return false;
  }
  return true;
}

bool get_bool(const toml::node& v, const std::string& key, Errors* errors, bool* out) {
  if (const auto* b = v.as_boolean()) {
    *out = b->get();
    return true;
  }
  errors->add(line_of(v), key, "invalid value " + show(v) + ": expected true or false");
  return false;
}

// ALPN protocol names: 1 to 255 bytes each (RFC 7301), in the order they are preferred.
bool get_alpn(const toml::node& v, const std::string& key, Errors* errors, std::vector<std::string>* out) {
  const toml::array* a = v.as_array();
  if (a == nullptr || a->empty()) {
    errors->add(line_of(v), key, "expected an array of one or more protocol names ([\"h2\", \"http/1.1\"])");
    return false;
  }
  out->clear();
  for (size_t i = 0; i < a->size(); ++i) {
    const auto* s = a->get(i)->as_string();
    const std::string at = key + "[" + std::to_string(i) + "]";
    if (s == nullptr || s->get().empty() || s->get().size() > 255) {
      errors->add(line_of(*a->get(i)), at, "expected a protocol name of 1 to 255 bytes");
      return false;
    }
    for (const std::string& seen : *out) {
      if (seen == s->get()) {
        errors->add(line_of(*a->get(i)), at, "'" + seen + "' is listed twice");
        return false;
      }
    }
    out->push_back(s->get());
  }
  return true;
}

// Whether OpenSSL accepts the list: a typo fails here, with the file's line, not at start-up.
bool check_ciphers(const std::string& text, bool tls13, std::string* why) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_method()), SSL_CTX_free);
  if (!ctx) return true;  // no context to try it on: the server's own build reports it
  const int ok = tls13 ? SSL_CTX_set_ciphersuites(ctx.get(), text.c_str()) : SSL_CTX_set_cipher_list(ctx.get(), text.c_str());
  ERR_clear_error();
  if (ok == 1) return true;
  *why = tls13 ? "not a TLS 1.3 ciphersuite list OpenSSL knows (TLS_AES_128_GCM_SHA256:...)"
               : "no TLS 1.2 cipher OpenSSL knows matches it (see `openssl ciphers`)";
  return false;
}

// The tables of `certificates`: {cert = "...", key = "..."} each.
bool read_certificates(const toml::node& v, const std::string& key, Errors* errors,
                       std::vector<TlsCertificateFiles>* out) {
  const toml::array* a = v.as_array();
  if (a == nullptr || a->empty()) {
    errors->add(line_of(v), key, "expected an array of one or more {cert = \"FILE\", key = \"FILE\"}");
    return false;
  }
  bool ok = true;
  for (size_t i = 0; i < a->size(); ++i) {
    const std::string at = key + "[" + std::to_string(i) + "]";
    const toml::table* t = a->get(i)->as_table();
    if (t == nullptr) {
      errors->add(line_of(*a->get(i)), at, "expected {cert = \"FILE\", key = \"FILE\"}");
      ok = false;
      continue;
    }
    TlsCertificateFiles files;
    for (auto&& [k, value] : *t) {
      const std::string name(k.str());
      if (name == "cert") {
        ok = get_nonempty(value, at + ".cert", errors, &files.cert) && ok;
      } else if (name == "key") {
        ok = get_nonempty(value, at + ".key", errors, &files.key) && ok;
      } else {
        errors->add(line_of(value), at + "." + name, "unknown key (a certificate has cert and key)");
        ok = false;
      }
    }
    if (!t->contains("cert") || !t->contains("key")) {
      errors->add(line_of(*a->get(i)), at, "needs both cert and key (PEM files: the chain, its key)");
      ok = false;
    }
    out->push_back(files);
  }
  return ok;
}

const toml::table* table_of(const toml::node& node, const std::string& path, const char* header, Errors* errors) {
  const toml::table* t = node.as_table();
  if (t == nullptr) errors->add(line_of(node), path, std::string("expected a table ") + header);
  return t;
}

}  // namespace

void read_listener_tls(const toml::node& node, const std::string& path, Errors* errors,
                       std::optional<TlsListenerConfig>* out) {
  const toml::table* t = table_of(node, path, "[listener.tls] (after its [[listener]])", errors);
  if (t == nullptr) return;
  TlsListenerConfig c;
  bool ok = true;
  int ca_line = 0, verify_line = 0, ticket_file_line = 0;
  bool has_certificates = false;
  for (auto&& [k, v] : *t) {
    const std::string key(k.str());
    const std::string at = path + "." + key;
    const int line = line_of(v);
    std::string text, why;
    if (key == "certificates") {
      has_certificates = true;
      ok = read_certificates(v, at, errors, &c.certificates) && ok;
    } else if (key == "alpn") {
      ok = get_alpn(v, at, errors, &c.alpn) && ok;
    } else if (key == "min-version") {
      if (!get_text(v, at, line, errors, &text)) {
        ok = false;
      } else if (text == "1.2" || text == "1.3") {
        c.min_version = text == "1.2" ? TlsMinVersion::k12 : TlsMinVersion::k13;
      } else {
        errors->add(line, at, "invalid value " + show(v) + ": expected \"1.2\" or \"1.3\"");
        ok = false;
      }
    } else if (key == "ciphers" || key == "ciphersuites") {
      const bool tls13 = key == "ciphersuites";
      if (!get_nonempty(v, at, errors, &text)) {
        ok = false;
      } else if (!check_ciphers(text, tls13, &why)) {
        errors->add(line, at, "invalid value " + show(v) + ": " + why);
        ok = false;
      } else {
        (tls13 ? c.ciphersuites : c.ciphers) = text;
      }
    } else if (key == "client-ca") {
      ca_line = line;
      ok = get_nonempty(v, at, errors, &c.client_ca) && ok;
    } else if (key == "client-verify") {
      verify_line = line;
      if (!get_text(v, at, line, errors, &text)) {
        ok = false;
      } else if (text == "none" || text == "optional" || text == "required") {
        c.client_verify = text == "none"       ? TlsClientVerify::kNone
                          : text == "optional" ? TlsClientVerify::kOptional
                                               : TlsClientVerify::kRequired;
      } else {
        errors->add(line, at, "invalid value " + show(v) + ": expected \"required\", \"optional\" or \"none\"");
        ok = false;
      }
    } else if (key == "handshake-timeout") {
      if (!get_text(v, at, line, errors, &text)) {
        ok = false;
      } else if (const Status parsed = parse_duration(text, &c.handshake_timeout); !parsed.ok()) {
        errors->add(line, at, "invalid value " + show(v) + ": " + parsed.message());
      } else if (c.handshake_timeout.count() == 0) {
        errors->add(line, at, "invalid value " + show(v) + ": must be above 0");
        ok = false;
      }
    } else if (key == "session-tickets") {
      ok = get_bool(v, at, errors, &c.session_tickets) && ok;
    } else if (key == "ticket-keys-file") {
      ticket_file_line = line;
      ok = get_nonempty(v, at, errors, &c.ticket_keys_file) && ok;
    } else {
      errors->add(line, at, "unknown key (a [listener.tls] table has " + list(kListenerTlsKeys) + ")");
      ok = false;
    }
  }
  if (!has_certificates) {
    errors->add(line_of(node), path + ".certificates",
                "required (certificates = [{cert = \"FILE\", key = \"FILE\"}])");
    ok = false;
  }
  if (c.client_verify != TlsClientVerify::kNone && ca_line == 0) {
    errors->add(verify_line, path + ".client-verify", "needs client-ca (the CAs client certificates are verified against)");
    ok = false;
  } else if (ca_line != 0 && c.client_verify == TlsClientVerify::kNone) {
    errors->add(ca_line, path + ".client-ca", "only used with client-verify = \"required\" or \"optional\"");
    ok = false;
  }
  if (ticket_file_line != 0 && !c.session_tickets) {
    errors->add(ticket_file_line, path + ".ticket-keys-file", "only used with session-tickets = true");
    ok = false;
  }
  if (ok) *out = std::move(c);
}

void read_cluster_tls(const toml::node& node, const std::string& path, Errors* errors,
                      std::optional<TlsClusterConfig>* out) {
  const toml::table* t = table_of(node, path, "[cluster.NAME.tls]", errors);
  if (t == nullptr) return;
  TlsClusterConfig c;
  bool ok = true;
  int ca_line = 0, cert_line = 0, key_line = 0;
  for (auto&& [k, v] : *t) {
    const std::string key(k.str());
    const std::string at = path + "." + key;
    const int line = line_of(v);
    std::string text;
    if (key == "sni") {
      if (!get_text(v, at, line, errors, &text)) {
        ok = false;
      } else if (!valid_dns_name(text) || text.back() == '.') {
        errors->add(line, at, "invalid value " + show(v) + ": expected a DNS name (backend.internal)");
        ok = false;
      } else {
        for (char& ch : text) ch = static_cast<char>(tolower(static_cast<unsigned char>(ch)));
        c.sni = text;
      }
    } else if (key == "verify") {
      ok = get_bool(v, at, errors, &c.verify) && ok;
    } else if (key == "ca-file") {
      ca_line = line;
      ok = get_nonempty(v, at, errors, &c.ca_file) && ok;
    } else if (key == "cert") {
      cert_line = line;
      ok = get_nonempty(v, at, errors, &c.cert) && ok;
    } else if (key == "key") {
      key_line = line;
      ok = get_nonempty(v, at, errors, &c.key) && ok;
    } else if (key == "alpn") {
      ok = get_alpn(v, at, errors, &c.alpn) && ok;
    } else {
      errors->add(line, at, "unknown key (a [cluster.NAME.tls] table has " + list(kClusterTlsKeys) + ")");
      ok = false;
    }
  }
  if ((cert_line != 0) != (key_line != 0)) {
    const bool has_cert = cert_line != 0;
    errors->add(has_cert ? cert_line : key_line, path + (has_cert ? ".cert" : ".key"), "needs both cert and key");
    ok = false;
  }
  if (ca_line != 0 && !c.verify) {
    errors->add(ca_line, path + ".ca-file", "only used with verify = true");
    ok = false;
  }
  if (ok) *out = std::move(c);
}

}  // namespace ringlb::toml_reader
