#include "tests/support/etcd.h"

#include <sys/stat.h>

#include <fstream>
#include <regex>

#include "tests/support/backends.h"

namespace ringlb::testing {

// Ports below the ephemeral range: etcd binds them at every start() (a test restarts it).
EtcdServer::EtcdServer() : client_port_(quiet_port()), peer_port_(quiet_port()) {}

EtcdServer::~EtcdServer() { kill(); }

bool EtcdServer::start() {
  const std::string client = endpoint();
  const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
  std::vector<std::string> argv = {
      "etcd", "--name", "test", "--data-dir", dir_.path() + "/data", "--listen-client-urls", client,
      "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
      "--initial-cluster", "test=" + peer, "--log-level", "error"};
  if (tls_) {
    const std::string t = tls_dir();
    argv.insert(argv.end(), {"--cert-file", t + "/server.pem", "--key-file", t + "/server.key",
                             "--trusted-ca-file", t + "/ca.pem", "--client-cert-auth"});
  }
  process_ = std::make_unique<ChildProcess>(argv);
  if (!process_->started()) return false;
  if (tls_) return eventually([&] { return ctl({"endpoint", "health"}); }, std::chrono::seconds(20));
  // A first start on a loaded machine (the whole suite at once) elects its leader slowly.
  return eventually([&] { return http_get(client_port_, "/health").find("\"true\"") != std::string::npos; },
                    std::chrono::seconds(20));
}

void EtcdServer::kill() { process_.reset(); }

bool EtcdServer::ctl(std::vector<std::string> args, std::string* out) {
  args.insert(args.begin(), {"etcdctl", "--endpoints", endpoint(), "--command-timeout", "5s"});
  if (!root_.empty()) args.insert(args.begin() + 1, {"--user", root_});
  if (tls_) {
    const std::string t = tls_dir();
    args.insert(args.begin() + 1, {"--cacert", t + "/ca.pem", "--cert", t + "/client.pem", "--key", t + "/client.key"});
  }
  const RunResult r = run_command(args, std::chrono::seconds(10));
  if (out != nullptr) *out = r.output;
  return r.exit_code == 0;
}

bool EtcdServer::put(const std::string& key, const std::string& value) {
  // "--" so that a value starting with '-' is not read as a flag.
  return ctl({"put", "--", key, value});
}

bool EtcdServer::del(const std::string& key) { return ctl({"del", key}); }

int64_t EtcdServer::revision() {
  std::string out;
  if (!ctl({"endpoint", "status", "--write-out", "json"}, &out)) return 0;
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("\"revision\":([0-9]+)"))) return 0;
  return std::stoll(m[1]);
}

bool EtcdServer::enable_auth(const std::string& user, const std::string& password, const std::string& prefix) {
  const bool ok = ctl({"user", "add", "root:rootpw", "--interactive=false"}) && ctl({"role", "add", "reader"}) &&
                  ctl({"role", "grant-permission", "reader", "--prefix=true", "read", prefix}) &&
                  ctl({"user", "add", user + ":" + password, "--interactive=false"}) &&
                  ctl({"user", "grant-role", user, "reader"}) && ctl({"auth", "enable"});
  if (ok) root_ = "root:rootpw";
  return ok;
}

bool EtcdServer::enable_tls() {
  const std::string t = tls_dir();
  mkdir(t.c_str(), 0700);
  std::ofstream(t + "/server.ext") << "subjectAltName=IP:127.0.0.1\n";
  const std::vector<std::string> ec = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"};
  auto req = [&](const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> argv = {"openssl", "req"};
    argv.insert(argv.end(), ec.begin(), ec.end());
    argv.insert(argv.end(), {"-keyout", t + "/" + name + ".key", "-subj", "/CN=" + name});
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv).exit_code == 0;
  };
  auto sign = [&](const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> argv = {"openssl", "x509", "-req", "-in", t + "/" + name + ".csr", "-CA", t + "/ca.pem",
                                     "-CAkey", t + "/ca.key", "-CAcreateserial", "-days", "1",
                                     "-out", t + "/" + name + ".pem"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv).exit_code == 0;
  };
  tls_ = req("ca", {"-x509", "-days", "1", "-out", t + "/ca.pem"}) && req("server", {"-out", t + "/server.csr"}) &&
         sign("server", {"-extfile", t + "/server.ext"}) && req("client", {"-out", t + "/client.csr"}) &&
         sign("client", {});
  return tls_;
}

bool EtcdServer::compact(int64_t revision) { return ctl({"compact", std::to_string(revision)}); }

}  // namespace ringlb::testing
