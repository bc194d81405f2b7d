#include "server/tls/client_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdlib>

#include "server/tls/certificates.h"
#include "server/tls/notes.h"

namespace ringlb::tls {

std::string system_ca_file() {
  const char* env = getenv(X509_get_default_cert_file_env());
  return env != nullptr && *env != '\0' ? env : X509_get_default_cert_file();
}

ClientContext::~ClientContext() {
  for (auto& [backend, s] : sessions_) SSL_SESSION_free(s);
}

SSL_SESSION* ClientContext::session(uint32_t backend) const {
  auto it = sessions_.find(backend);
  return it == sessions_.end() ? nullptr : it->second;
}

void ClientContext::remember(uint32_t backend, SSL_SESSION* taken) {
  SSL_SESSION*& slot = sessions_[backend];
  if (slot != nullptr) SSL_SESSION_free(slot);
  slot = taken;
}

void ClientContext::forget(uint32_t backend) {
  auto it = sessions_.find(backend);
  if (it == sessions_.end()) return;
  SSL_SESSION_free(it->second);
  sessions_.erase(it);
}

// A session (TLS 1.2's at the handshake, TLS 1.3's with each ticket after it) goes to the backend
// whose connection got it; the last one is kept. 1: the reference is ours.
int ClientContext::on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* self = static_cast<ClientContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  const auto* notes = static_cast<const HandshakeNotes*>(SSL_get_app_data(ssl));
  if (self == nullptr || notes == nullptr) return 0;
  self->remember(notes->backend, session);
  return 1;
}

Status ClientContextSet::build(const TlsClusterConfig& config, const std::string& cluster, unsigned workers,
                               std::shared_ptr<const ClientContextSet>* out) {
  std::string ca_pem;
  Status status;
  if (config.verify) {
    const std::string ca_file = config.ca_file.empty() ? system_ca_file() : config.ca_file;
    std::string why;
    if (!read_ca_file(ca_file, &ca_pem, &why)) status.add(Status::error(ca_file + ": " + why));
  }
  std::string cert_pem, key_pem, why;
  if (!config.cert.empty()) {
    X509Ptr cert;
    X509StackPtr chain;
    EvpPkeyPtr key;
    status.add(load_certificate({config.cert, config.key}, &cert, &chain, &key));
    if (status.ok() && (!read_file(config.cert, &cert_pem, &why) || !read_file(config.key, &key_pem, &why))) {
      status.add(Status::error(config.cert + ": " + why));
    }
  }
  if (!status.ok()) return status;
  auto set = std::make_shared<ClientContextSet>();
  const std::string alpn = alpn_wire(config.alpn);
  for (unsigned w = 0; w < std::max(1u, workers); ++w) {
    auto context = std::make_shared<ClientContext>();
    context->config_ = config;
    context->cluster_ = cluster;
    context->alpn_ = alpn;
    context->ctx_.reset(SSL_CTX_new(TLS_client_method()));
    SSL_CTX* ctx = context->ctx_.get();
    if (ctx == nullptr) return Status::failure("cluster " + cluster + ": " + openssl_error());
    SSL_CTX_set_app_data(ctx, context.get());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (config.verify) {
      SSL_CTX_set_cert_store(ctx, store_from_pem(ca_pem));
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    } else {
      SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    }
    if (!alpn.empty() && SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(alpn.data()),
                                                 static_cast<unsigned int>(alpn.size())) != 0) {
      return Status::error("cluster " + cluster + ": alpn: " + openssl_error());
    }
    if (!config.cert.empty()) {
      // Each worker decodes its own copy of the key (no EVP_PKEY shared between threads).
      BioPtr cert_in(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
      BioPtr key_in(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
      X509Ptr cert(PEM_read_bio_X509(cert_in.get(), nullptr, nullptr, nullptr));
      X509StackPtr chain(sk_X509_new_null());
      while (X509* next = PEM_read_bio_X509(cert_in.get(), nullptr, nullptr, nullptr)) sk_X509_push(chain.get(), next);
      EvpPkeyPtr key(PEM_read_bio_PrivateKey(key_in.get(), nullptr, nullptr, nullptr));
      ERR_clear_error();
      if (!cert || !key || SSL_CTX_use_cert_and_key(ctx, cert.get(), key.get(), chain.get(), 1) != 1) {
        return Status::error(config.cert + ": " + openssl_error("cannot use the certificate"));
      }
    }
    // Client sessions through the callback only, kept per backend: a session from one backend
    // is never offered to another.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, ClientContext::on_new_session);
    set->workers_.push_back(std::move(context));
  }
  *out = std::move(set);
  return Status();
}

}  // namespace ringlb::tls
