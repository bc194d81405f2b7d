// Loading a listener's certificates (refusals and warnings as "FILE: reason"), their names, and
// the choice per client: exact name, wildcard, default, and RSA or ECDSA by the client's
// signature algorithms. Real handshakes choosing them: server_context_test and openssl_peer_test.
#include "server/tls/certificates.h"

#include <gtest/gtest.h>

#include <ctime>

#include "tests/support/process.h"
#include "tests/tls/test_pki.h"

namespace ringlb::tls {
namespace {

using pki::issue;
using pki::Issued;
using pki::Spec;
using pki::write_pair;
using ringlb::testing::TempDir;

int64_t now() { return static_cast<int64_t>(time(nullptr)); }

std::shared_ptr<const CertificateSet> load_ok(const std::vector<TlsCertificateFiles>& files,
                                              std::vector<std::string>* warnings = nullptr) {
  std::vector<std::string> ignored;
  std::shared_ptr<const CertificateSet> set;
  const Status s = CertificateSet::load(files, now(), &set, warnings != nullptr ? warnings : &ignored);
  EXPECT_TRUE(s.ok()) << s.message();
  return set;
}

TEST(Certificates, NamesKeyTypeAndExpiry) {
  TempDir dir;
  const Issued ca = issue({.cn = "Test CA", .key = KeyType::kRsa, .ca = true});
  const Issued leaf = issue({.cn = "WWW.Example.com", .dns = {"www.example.com", "*.Api.Example.com", "example.com"}},
                            &ca);
  auto set = load_ok({write_pair(dir.path(), "leaf", leaf, {ca.cert.get()})});
  ASSERT_TRUE(set);
  ASSERT_EQ(set->size(), 1u);
  const Certificate& c = set->at(0);
  EXPECT_EQ(c.names(), (std::vector<std::string>{"www.example.com", "*.api.example.com", "example.com"}));
  EXPECT_EQ(c.label(), "www.example.com");
  EXPECT_EQ(c.key_type(), KeyType::kEcdsa);
  EXPECT_EQ(sk_X509_num(c.chain()), 1) << "the CA after the leaf is its chain";
  EXPECT_NEAR(static_cast<double>(c.not_after()), static_cast<double>(now() + 30 * 86400), 5.0);
}

TEST(Certificates, RefusesAKeyThatDoesNotMatch) {
  TempDir dir;
  const Issued a = issue({.cn = "a.test"});
  const Issued b = issue({.cn = "b.test", .key_index = 1});
  TlsCertificateFiles files = write_pair(dir.path(), "a", a);
  files.key = write_pair(dir.path(), "b", b).key;
  std::shared_ptr<const CertificateSet> set;
  std::vector<std::string> warnings;
  const Status s = CertificateSet::load({files}, now(), &set, &warnings);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), files.key + ": the key does not match the certificate in " + files.cert);
  EXPECT_EQ(s.exit_code(), kExitBadInput);
  EXPECT_FALSE(set);
}

TEST(Certificates, RefusesAnExpiredOneAndWarnsBeforeExpiry) {
  TempDir dir;
  const Issued expired = issue({.cn = "old.test", .not_before = -10 * 86400, .not_after = -60});
  const Issued soon = issue({.cn = "soon.test", .not_after = 5 * 86400 + 3600});
  const Issued later = issue({.cn = "later.test", .not_after = 15 * 86400});
  std::shared_ptr<const CertificateSet> set;
  std::vector<std::string> warnings;
  const TlsCertificateFiles old_files = write_pair(dir.path(), "old", expired);
  Status s = CertificateSet::load({old_files}, now(), &set, &warnings);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind(old_files.cert + ": the certificate expired on 20", 0), 0u) << s.message();
  EXPECT_NE(s.message().find(" UTC"), std::string::npos);

  const TlsCertificateFiles soon_files = write_pair(dir.path(), "soon", soon);
  auto ok = load_ok({soon_files, write_pair(dir.path(), "later", later)}, &warnings);
  ASSERT_TRUE(ok);
  ASSERT_EQ(warnings.size(), 1u) << "15 days is not within 14";
  EXPECT_EQ(warnings[0].rfind(soon_files.cert + ": the certificate expires on ", 0), 0u) << warnings[0];
  EXPECT_NE(warnings[0].find("(in 5 days)"), std::string::npos) << warnings[0];
}

TEST(Certificates, EveryBrokenFileIsNamed) {
  TempDir dir;
  const Issued good = issue({.cn = "good.test"});
  const TlsCertificateFiles ok_files = write_pair(dir.path(), "good", good);
  const std::string garbage = dir.path() + "/garbage.pem";
  pki::write_text(garbage, "not a certificate\n");
  const std::string encrypted = dir.path() + "/encrypted.key";
  pki::write_text(encrypted, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n");
  std::shared_ptr<const CertificateSet> set;
  std::vector<std::string> warnings;
  const Status s = CertificateSet::load({{dir.path() + "/missing.crt", ok_files.key},
                                         {garbage, ok_files.key},
                                         {ok_files.cert, encrypted},
                                         {ok_files.cert, garbage},
                                         ok_files},
                                        now(), &set, &warnings);
  ASSERT_FALSE(s.ok());
  const std::vector<std::string> lines = s.lines();
  ASSERT_EQ(lines.size(), 4u) << s.message();
  EXPECT_EQ(lines[0], dir.path() + "/missing.crt: No such file or directory");
  EXPECT_EQ(lines[1].rfind(garbage + ": no PEM certificate in it", 0), 0u) << lines[1];
  EXPECT_EQ(lines[2].rfind(encrypted + ": an encrypted key", 0), 0u) << lines[2];
  EXPECT_EQ(lines[3].rfind(garbage + ": no PEM private key in it", 0), 0u) << lines[3];
  EXPECT_FALSE(set) << "one broken file refuses the whole set";
}

class Selection : public ::testing::Test {
 protected:
  void SetUp() override {
    const Issued ca = issue({.cn = "CA", .ca = true});
    // In order: the default pair (RSA first, then its ECDSA twin), an exact name, a wildcard.
    files_ = {write_pair(dir_.path(), "default-rsa", issue({.cn = "default.test", .key = KeyType::kRsa}, &ca)),
              write_pair(dir_.path(), "default-ec", issue({.cn = "default.test"}, &ca)),
              write_pair(dir_.path(), "api-rsa", issue({.cn = "api.example.com", .key = KeyType::kRsa, .key_index = 1}, &ca)),
              write_pair(dir_.path(), "api-ec", issue({.cn = "api.example.com", .key_index = 1}, &ca)),
              write_pair(dir_.path(), "wild", issue({.cn = "wild", .dns = {"*.example.com"}, .key_index = 2}, &ca))};
    set_ = load_ok(files_);
    ASSERT_TRUE(set_);
  }
  const std::string& chosen(std::string_view name, ClientSignatures sigs) {
    return set_->select(name, sigs).files().cert;
  }
  TempDir dir_;
  std::vector<TlsCertificateFiles> files_;
  std::shared_ptr<const CertificateSet> set_;
};

TEST_F(Selection, ExactThenWildcardThenDefault) {
  const ClientSignatures both{true, true}, rsa_only{true, false};
  EXPECT_EQ(chosen("api.example.com", both), files_[3].cert) << "exact, ECDSA for a client that can";
  EXPECT_EQ(chosen("api.example.com", rsa_only), files_[2].cert) << "exact, RSA for one that cannot";
  EXPECT_EQ(chosen("www.example.com", both), files_[4].cert) << "the wildcard covers one label";
  EXPECT_EQ(chosen("a.b.example.com", both), files_[1].cert) << "not two: the default";
  EXPECT_EQ(chosen("example.com", both), files_[1].cert) << "nor none";
  EXPECT_EQ(chosen("", rsa_only), files_[0].cert) << "no SNI: the default, RSA";
  EXPECT_EQ(chosen("", both), files_[1].cert) << "no SNI: the default's ECDSA twin";
  EXPECT_EQ(chosen("unknown.test", ClientSignatures{false, false}), files_[0].cert)
      << "a client offering neither gets the first candidate";
}

TEST_F(Selection, PerWorkerCopiesHoldTheirOwnKeys) {
  auto copy = set_->copy();
  ASSERT_EQ(copy->size(), set_->size());
  for (size_t i = 0; i < set_->size(); ++i) {
    EXPECT_NE(copy->at(i).key(), set_->at(i).key()) << "decoded again, not shared";
    EXPECT_EQ(EVP_PKEY_eq(copy->at(i).key(), set_->at(i).key()), 1);
    EXPECT_EQ(X509_cmp(copy->at(i).x509(), set_->at(i).x509()), 0);
    EXPECT_EQ(copy->at(i).names(), set_->at(i).names());
  }
  EXPECT_EQ(copy->select("www.example.com", {true, true}).files().cert, files_[4].cert);
}

std::vector<uint8_t> sigalgs(std::vector<uint16_t> schemes) {
  std::vector<uint8_t> ext{static_cast<uint8_t>(schemes.size() * 2 >> 8), static_cast<uint8_t>(schemes.size() * 2)};
  for (uint16_t s : schemes) {
    ext.push_back(static_cast<uint8_t>(s >> 8));
    ext.push_back(static_cast<uint8_t>(s));
  }
  return ext;
}

TEST(ClientHello, SignatureAlgorithms) {
  ClientSignatures s;
  // OpenSSL 3's default list starts with ecdsa_secp256r1_sha256 (0x0403), then ed25519, ...
  auto ext = sigalgs({0x0403, 0x0807, 0x0804, 0x0401});
  ASSERT_TRUE(parse_signature_algorithms(ext.data(), ext.size(), &s));
  EXPECT_TRUE(s.ecdsa);
  EXPECT_TRUE(s.rsa);
  ext = sigalgs({0x0804, 0x0805});  // rsa_pss_rsae only
  ASSERT_TRUE(parse_signature_algorithms(ext.data(), ext.size(), &s));
  EXPECT_FALSE(s.ecdsa);
  EXPECT_TRUE(s.rsa);
  ext = sigalgs({0x0503, 0x0807});  // ecdsa_secp384r1_sha384, ed25519
  ASSERT_TRUE(parse_signature_algorithms(ext.data(), ext.size(), &s));
  EXPECT_TRUE(s.ecdsa);
  EXPECT_FALSE(s.rsa);
  ext = sigalgs({0x0403});
  ext.push_back(0x01);  // odd length
  EXPECT_FALSE(parse_signature_algorithms(ext.data(), ext.size(), &s));
  ext = {0x00, 0x04, 0x04, 0x03};  // announces 4 bytes, has 2
  EXPECT_FALSE(parse_signature_algorithms(ext.data(), ext.size(), &s));
}

TEST(ClientHello, ServerName) {
  std::string name;
  const std::string host = "WWW.Example.COM";
  std::vector<uint8_t> ext{0x00, static_cast<uint8_t>(host.size() + 3), 0x00, 0x00, static_cast<uint8_t>(host.size())};
  ext.insert(ext.end(), host.begin(), host.end());
  ASSERT_TRUE(parse_server_name(ext.data(), ext.size(), &name));
  EXPECT_EQ(name, "www.example.com");
  ext[1] += 1;  // the list's length no longer matches
  EXPECT_FALSE(parse_server_name(ext.data(), ext.size(), &name));
  const uint8_t with_nul[] = {0x00, 0x06, 0x00, 0x00, 0x03, 'a', 0x00, 'b'};
  EXPECT_FALSE(parse_server_name(with_nul, sizeof(with_nul), &name));
  const uint8_t not_host[] = {0x00, 0x06, 0x01, 0x00, 0x03, 'a', 'b', 'c'};
  EXPECT_FALSE(parse_server_name(not_host, sizeof(not_host), &name));
}

}  // namespace
}  // namespace ringlb::tls
