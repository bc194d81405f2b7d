// `ringlb check`'s TLS part: a config's TLS files all loaded, every problem named by its file,
// warnings for certificates close to expiry.
#include "server/tls/check.h"

#include <gtest/gtest.h>

#include "tests/support/process.h"
#include "tests/tls/test_pki.h"

namespace ringlb::tls {
namespace {

using ringlb::testing::TempDir;

TEST(Check, EveryFileOfTheConfig) {
  TempDir dir;
  const pki::StandardPki pki(dir.path());
  const pki::Issued soon = pki::issue({.cn = "soon.example.com", .key_index = 7, .not_after = 3 * 86400 + 600});
  Config config;
  ListenConfig good, broken;
  good.name = "https";
  good.tls.emplace();
  good.tls->certificates = {pki.www_ec, pki::write_pair(dir.path(), "soon", soon)};
  broken.name = "admin";
  broken.tls.emplace();
  broken.tls->certificates = {{pki.www_ec.cert, pki.client.key}};
  broken.tls->client_ca = dir.path() + "/clients.pem";
  broken.tls->client_verify = TlsClientVerify::kRequired;
  ListenConfig plain;
  plain.name = "tcp";
  config.listen = {good, broken, plain};
  ClusterConfig web;
  web.name = "web";
  web.tls.emplace();
  web.tls->ca_file = pki.ca_file;
  web.tls->cert = pki.client.cert;
  web.tls->key = dir.path() + "/client-missing.key";
  config.clusters = {web};

  std::vector<std::string> warnings;
  const Status s = check_files(config, &warnings);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.exit_code(), kExitBadInput);
  EXPECT_EQ(s.lines(), (std::vector<std::string>{
                           pki.client.key + ": the key does not match the certificate in " + pki.www_ec.cert,
                           dir.path() + "/clients.pem: No such file or directory",
                           dir.path() + "/client-missing.key: No such file or directory",
                       }));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("soon.crt: the certificate expires on "), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("(in 3 days)"), std::string::npos) << warnings[0];

  config.listen = {good, plain};
  web.tls->key = pki.client.key;
  config.clusters = {web};
  warnings.clear();
  EXPECT_TRUE(check_files(config, &warnings).ok());
  EXPECT_EQ(warnings.size(), 1u);
}

}  // namespace
}  // namespace ringlb::tls
