// Session resumption on a terminating listener: tickets that one worker issues resume on
// another (one TicketKeys, two SSL_CTXs), across a reload that keeps the keys, through rotation
// (the last 3 keys decrypt), from HAProxy's ticket-keys file shared by two processes, and the
// per-worker session cache when tickets are off. With TLS 1.3 and TLS 1.2.
#include "server/tls/ticket_keys.h"

#include <gtest/gtest.h>
#include <openssl/rand.h>

#include <functional>

#include "server/tls/server_context.h"
#include "server/tls/stream.h"
#include "tests/support/process.h"
#include "tests/tls/stream_pair.h"
#include "tests/tls/test_pki.h"

namespace ringlb::tls {
namespace {

using pki::RawSide;
using pki::StandardPki;
using pki::StreamSide;
using ringlb::testing::TempDir;

int64_t fake_now = 1'000'000;
int64_t fake_clock() { return fake_now; }

std::string base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string random_bytes(size_t n) {
  std::string s(n, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(n));
  return s;
}

class Resumption : public ::testing::TestWithParam<int> {
 protected:
  Resumption() : pki_(dir_.path()), client_ctx_(SSL_CTX_new(TLS_client_method())) {
    SSL_CTX_set_max_proto_version(client_ctx_.get(), GetParam());
    // The client keeps its sessions itself (as s_client -sess_out does).
    SSL_CTX_set_session_cache_mode(client_ctx_.get(), SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  }

  std::shared_ptr<const ServerContextSet> build(TlsListenerConfig c, std::shared_ptr<TicketKeys> keys = nullptr) {
    c.certificates = {pki_.www_ec};
    std::shared_ptr<const ServerContextSet> set;
    std::vector<std::string> warnings;
    const Status s =
        ServerContextSet::build(c, {.listener = "https", .workers = 2, .ticket_keys = std::move(keys)}, &set, &warnings);
    EXPECT_TRUE(s.ok()) << s.message();
    return set;
  }

  // One connection to `worker`, offering `session` (may be null); returns the session it ends
  // with, and whether it was resumed (both sides must agree).
  SSL_SESSION* connect(const std::shared_ptr<const ServerContextSet>& set, size_t worker, SSL_SESSION* session,
                       bool* resumed) {
    Stream server(set->worker(worker));
    StreamSide s(&server);
    RawSide client(client_ctx_.get(), false, [session](SSL* ssl) {
      SSL_set_tlsext_host_name(ssl, "www.example.com");
      if (session != nullptr) SSL_set_session(ssl, session);
    });
    pki::run(client, s);
    EXPECT_TRUE(server.handshake_done()) << server.error();
    // TLS 1.3 tickets come after the handshake: a byte of data makes the client read them.
    EXPECT_EQ(server.write("x", 1), 1);
    pki::run(client, s);
    *resumed = server.resumed();
    EXPECT_EQ(*resumed, SSL_session_reused(client.ssl()) == 1);
    return SSL_get1_session(client.ssl());
  }

  TempDir dir_;
  StandardPki pki_;
  SslCtxPtr client_ctx_;
};

struct SessionFree {
  void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
};
using Session = std::unique_ptr<SSL_SESSION, SessionFree>;

TEST_P(Resumption, TicketsFromOneWorkerResumeOnAnother) {
  auto set = build({});
  bool resumed = true;
  Session first(connect(set, 0, nullptr, &resumed));
  EXPECT_FALSE(resumed);
  ASSERT_TRUE(first);
  Session second(connect(set, 1, first.get(), &resumed));
  EXPECT_TRUE(resumed) << "worker 1 decrypted worker 0's ticket";
  // A reload that keeps the keys (the set's own, passed on) keeps tickets valid.
  auto reloaded = build({}, set->ticket_keys());
  EXPECT_EQ(reloaded->ticket_keys(), set->ticket_keys());
  Session third(connect(reloaded, 0, second.get(), &resumed));
  EXPECT_TRUE(resumed) << "across the reload, with the ticket the resumed connection got (TLS 1.3's are used once)";
  // Fresh keys (another process) do not know the ticket: a full handshake, not a failure.
  auto stranger = build({});
  Session fourth(connect(stranger, 0, third.get(), &resumed));
  EXPECT_FALSE(resumed);
}

// Sessions are offered once each (a TLS 1.3 client uses a ticket once), so each step has a
// ticket of its own made under the first key.
TEST_P(Resumption, RotationKeepsTheLastThreeKeys) {
  fake_now = 1'000'000;
  auto keys = TicketKeys::generate(std::chrono::hours(12), fake_clock);
  auto set = build({}, keys);
  bool resumed = false;
  std::vector<Session> under_first;
  for (int i = 0; i < 4; ++i) under_first.emplace_back(connect(set, i % 2, nullptr, &resumed));
  const uint64_t generation = keys->generation();
  fake_now += 12 * 3600;  // due: the next handshake's callback rotates
  Session renewed(connect(set, 1, under_first[0].get(), &resumed));
  EXPECT_TRUE(resumed) << "the previous key still decrypts";
  EXPECT_EQ(keys->generation(), generation + 1) << "rotated by the clock, on the handshake";
  keys->rotate();
  Session still(connect(set, 0, under_first[1].get(), &resumed));
  EXPECT_TRUE(resumed) << "two keys back: the third of three";
  Session fresh(connect(set, 1, renewed.get(), &resumed));
  EXPECT_TRUE(resumed) << "the ticket renewed under the second key";
  keys->rotate();
  Session gone(connect(set, 1, under_first[2].get(), &resumed));
  EXPECT_FALSE(resumed) << "three keys back: forgotten, a full handshake";
  Session newest(connect(set, 0, gone.get(), &resumed));
  EXPECT_TRUE(resumed) << "the new ticket, under the current key";
}

TEST_P(Resumption, AFleetSharesTheKeysFile) {
  const std::string path = dir_.path() + "/tickets.key";
  pki::write_text(path, "# rotated by cron\n" + base64(random_bytes(80)) + "\n" + base64(random_bytes(80)) + "\n\n" +
                            base64(random_bytes(80)) + "\n");
  TlsListenerConfig c;
  c.ticket_keys_file = path;
  auto node_a = build(c);
  auto node_b = build(c);  // another process: its own TicketKeys read from the same file
  EXPECT_NE(node_a->ticket_keys(), node_b->ticket_keys());
  bool resumed = false;
  Session s(connect(node_a, 0, nullptr, &resumed));
  Session t(connect(node_b, 1, s.get(), &resumed));
  EXPECT_TRUE(resumed) << "node b decrypts node a's ticket";
  // Other keys (the second to last, which encrypts, is an AES-128 one).
  pki::write_text(path, base64(random_bytes(80)) + "\n" + base64(random_bytes(48)) + "\n" + base64(random_bytes(80)) +
                            "\n");
  auto unrelated = build(c);
  Session u(connect(unrelated, 0, t.get(), &resumed));
  EXPECT_FALSE(resumed) << "none of its keys made that ticket";
  Session v(connect(unrelated, 0, u.get(), &resumed));
  EXPECT_TRUE(resumed) << "AES-128 (48-byte) keys work too";
}

TEST_P(Resumption, WithoutTicketsTheWorkersCacheResumes) {
  TlsListenerConfig c;
  c.session_tickets = false;
  auto set = build(c);
  EXPECT_EQ(set->ticket_keys(), nullptr);
  bool resumed = false;
  Session s(connect(set, 0, nullptr, &resumed));
  Session same(connect(set, 0, s.get(), &resumed));
  EXPECT_TRUE(resumed) << "worker 0's session cache";
  Session unused(connect(set, 0, nullptr, &resumed));
  Session other(connect(set, 1, unused.get(), &resumed));
  EXPECT_FALSE(resumed) << "each worker has its own cache";
}

INSTANTIATE_TEST_SUITE_P(Versions, Resumption, ::testing::Values(TLS1_3_VERSION, TLS1_2_VERSION),
                         [](const auto& info) { return info.param == TLS1_3_VERSION ? "TLS13" : "TLS12"; });

TEST(TicketKeysFile, ErrorsNameTheLine) {
  TempDir dir;
  const std::string path = dir.path() + "/k";
  std::shared_ptr<TicketKeys> keys;
  pki::write_text(path, base64(random_bytes(80)) + "\nnot base64!\n");
  Status s = TicketKeys::load_file(path, &keys);
  EXPECT_EQ(s.message(), path + ":2: not base64");
  pki::write_text(path, "\n" + base64(random_bytes(64)) + "\n");
  s = TicketKeys::load_file(path, &keys);
  EXPECT_EQ(s.message(), path + ":2: a key is 48 or 80 bytes (base64 of 16 bytes of name, then the AES and HMAC keys), not 64");
  pki::write_text(path, "# nothing\n\n");
  s = TicketKeys::load_file(path, &keys);
  EXPECT_EQ(s.message(), path + ": no keys (one base64 line per key)");
  pki::write_text(path, base64(random_bytes(80)) + "\r\n" + base64(random_bytes(48)) + "\n");
  s = TicketKeys::load_file(path, &keys);
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(keys->file(), path);
}

// The ring a worker keeps: the file's last 3 keys, the second to last encrypting.
TEST(TicketKeysFile, LastThreeDecryptSecondToLastEncrypts) {
  TempDir dir;
  const std::string path = dir.path() + "/k";
  std::string file;
  std::vector<std::string> raw;
  for (int i = 0; i < 5; ++i) {
    raw.push_back(random_bytes(80));
    file += base64(raw.back()) + "\n";
  }
  pki::write_text(path, file);
  std::shared_ptr<TicketKeys> keys;
  ASSERT_TRUE(TicketKeys::load_file(path, &keys).ok());
  TicketKeys::Ring ring;
  keys->refresh(&ring);
  ASSERT_EQ(ring.keys.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(std::string(reinterpret_cast<char*>(ring.keys[i].name), 16), raw[2 + i].substr(0, 16));
  EXPECT_EQ(ring.encrypt, 1u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(ring.keys[1].aes), 32), raw[3].substr(16, 32)) << "name, AES, HMAC";
  EXPECT_EQ(std::string(reinterpret_cast<char*>(ring.keys[1].hmac), 32), raw[3].substr(48, 32));
  const uint64_t g = keys->generation();
  keys->rotate();
  EXPECT_EQ(keys->generation(), g) << "file keys do not rotate by themselves";
}

}  // namespace
}  // namespace ringlb::tls
