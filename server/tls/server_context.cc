#define OPENSSL_SUPPRESS_DEPRECATED 1  // SSL_CTX_set_tlsext_ticket_key_cb: see ticket_keys.cc

#include "server/tls/server_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <ctime>
#include <map>

namespace ringlb::tls {
namespace {

// Keeps the SNI in the session (OpenSSL stores it only when a servername callback accepts it),
// so a resumed connection still knows its name.
int accept_server_name(SSL*, int*, void*) { return SSL_TLSEXT_ERR_OK; }

Status configure_ciphers(SSL_CTX* ctx, const TlsListenerConfig& c, const std::string& listener) {
  if (!c.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, c.ciphers.c_str()) != 1) {
    return Status::error("listener " + listener + ": ciphers: " + openssl_error());
  }
  if (!c.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, c.ciphersuites.c_str()) != 1) {
    return Status::error("listener " + listener + ": ciphersuites: " + openssl_error());
  }
  return Status();
}

std::string session_id_context(const std::string& listener) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const std::string text = "ringlb listener " + listener;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(digest), std::min<unsigned>(len, SSL_MAX_SID_CTX_LENGTH));
}

}  // namespace

int ServerContext::on_client_hello(SSL* ssl, int* alert, void* arg) {
  const auto* self = static_cast<const ServerContext*>(arg);
  ClientSignatures signatures;
  std::string name;
  if (!read_client_hello(ssl, &signatures, &name)) {
    *alert = SSL_AD_DECODE_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  const Certificate& c = self->certificates_->select(name, signatures);
  // Exactly one certificate on this connection: OpenSSL would otherwise pick among several by
  // its own order, not the client's capabilities.
  if (SSL_use_cert_and_key(ssl, c.x509(), c.key(), c.chain(), 1) != 1) {
    ERR_clear_error();
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  if (auto* notes = static_cast<HandshakeNotes*>(SSL_get_app_data(ssl))) {
    notes->server_name = std::move(name);
    notes->certificate = &c;
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

int ServerContext::on_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                           unsigned int inlen, void* arg) {
  const auto* self = static_cast<const ServerContext*>(arg);
  unsigned char* chosen = nullptr;
  // The server's list first: its order is the preference.
  if (SSL_select_next_proto(&chosen, outlen, reinterpret_cast<const unsigned char*>(self->alpn_.data()),
                            static_cast<unsigned int>(self->alpn_.size()), in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // nothing in common: go on without ALPN, as HAProxy does
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

int ServerContext::on_ticket_key(SSL* ssl, unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                                 HMAC_CTX* hmac, int enc) {
  const auto* self = static_cast<const ServerContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  if (self == nullptr || !self->ticket_keys_) return -1;
  self->ticket_keys_->refresh(&self->ring_);
  const int r = TicketKeys::ticket_callback(self->ring_, name, iv, cipher, hmac, enc);
  // A TLS 1.3 client uses a ticket once (OpenSSL's do), and OpenSSL's server sends a resumed
  // client a new one only when asked to renew: without it every other connection would be a
  // full handshake.
  return r == 1 && enc == 0 && SSL_version(ssl) == TLS1_3_VERSION ? 2 : r;
}

Status ServerContextSet::build(const TlsListenerConfig& config, const ServerOptions& options,
                               std::shared_ptr<const ServerContextSet>* out, std::vector<std::string>* warnings) {
  auto set = std::make_shared<ServerContextSet>();
  set->config_ = config;
  const int64_t now = options.now != 0 ? options.now : static_cast<int64_t>(time(nullptr));
  Status status = CertificateSet::load(config.certificates, now, &set->certificates_, warnings);
  std::string ca_pem;
  if (config.client_verify != TlsClientVerify::kNone) {
    std::string why;
    if (!read_ca_file(config.client_ca, &ca_pem, &why)) status.add(Status::error(config.client_ca + ": " + why));
  }
  if (config.session_tickets) {
    if (!config.ticket_keys_file.empty()) {
      status.add(TicketKeys::load_file(config.ticket_keys_file, &set->ticket_keys_));
    } else if (options.ticket_keys && options.ticket_keys->file().empty()) {
      set->ticket_keys_ = options.ticket_keys;
    } else {
      set->ticket_keys_ = TicketKeys::generate();
    }
  }
  if (!status.ok()) return status;

  const std::string sid_ctx = session_id_context(options.listener);
  const std::string alpn = alpn_wire(config.alpn);
  for (unsigned w = 0; w < std::max(1u, options.workers); ++w) {
    auto context = std::make_shared<ServerContext>();
    context->listener_ = options.listener;
    context->certificates_ = w == 0 ? set->certificates_ : set->certificates_->copy();
    context->alpn_ = alpn;
    context->ticket_keys_ = set->ticket_keys_;
    context->ctx_.reset(SSL_CTX_new(TLS_server_method()));
    SSL_CTX* ctx = context->ctx_.get();
    if (ctx == nullptr) return Status::failure("listener " + options.listener + ": " + openssl_error());
    SSL_CTX_set_app_data(ctx, context.get());
    SSL_CTX_set_min_proto_version(ctx, config.min_version == TlsMinVersion::k13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 (config.session_tickets ? 0 : SSL_OP_NO_TICKET));
    // Idle connections give their 16 KiB read and write buffers back (50,000 of them hold no
    // 1.6 GB of buffers).
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    RINGLB_RETURN_IF_ERROR(configure_ciphers(ctx, config, options.listener));
    SSL_CTX_set_client_hello_cb(ctx, ServerContext::on_client_hello, context.get());
    SSL_CTX_set_tlsext_servername_callback(ctx, accept_server_name);
    if (!alpn.empty()) SSL_CTX_set_alpn_select_cb(ctx, ServerContext::on_alpn, context.get());
    if (config.client_verify != TlsClientVerify::kNone) {
      STACK_OF(X509_NAME)* names = nullptr;
      SSL_CTX_set_cert_store(ctx, store_from_pem(ca_pem, &names));  // this worker's own store
      SSL_CTX_set_client_CA_list(ctx, names);
      SSL_CTX_set_verify(ctx,
                         SSL_VERIFY_PEER | (config.client_verify == TlsClientVerify::kRequired
                                                ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                                : 0),
                         nullptr);
    }
    SSL_CTX_set_session_id_context(ctx, reinterpret_cast<const unsigned char*>(sid_ctx.data()),
                                   static_cast<unsigned int>(sid_ctx.size()));
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    if (config.session_tickets) {
      SSL_CTX_set_tlsext_ticket_key_cb(ctx, ServerContext::on_ticket_key);
      // One ticket per handshake: each costs an encryption and a record, and clients resume
      // with one.
      SSL_CTX_set_num_tickets(ctx, 1);
      set->ticket_keys_->refresh(&context->ring_);
    }
    set->workers_.push_back(std::move(context));
  }
  *out = std::move(set);
  return Status();
}

std::vector<ServerContextSet::Expiry> ServerContextSet::expiries() const {
  std::map<std::string, int> seen;
  for (size_t i = 0; i < certificates_->size(); ++i) ++seen[certificates_->at(i).label()];
  std::vector<Expiry> out;
  for (size_t i = 0; i < certificates_->size(); ++i) {
    const Certificate& c = certificates_->at(i);
    std::string name = c.label();
    // An RSA and an ECDSA certificate for one name: one series each.
    if (seen[name] > 1) name += c.key_type() == KeyType::kRsa ? " (RSA)" : c.key_type() == KeyType::kEcdsa ? " (ECDSA)" : " (" + c.files().cert + ")";
    out.push_back({name, c.not_after()});
  }
  return out;
}

}  // namespace ringlb::tls
