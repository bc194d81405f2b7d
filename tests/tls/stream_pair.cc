#include "tests/tls/stream_pair.h"

#include <openssl/err.h>

namespace ringlb::tls::pki {

std::string StreamSide::take_output() {
  std::string bytes(s_->pending_output(), '\0');
  s_->take_output(bytes.data(), bytes.size());
  return bytes;
}

void StreamSide::drain() {
  char buf[16384];
  for (;;) {
    const ssize_t n = s_->read(buf, sizeof(buf));
    if (n > 0) {
      got.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == Stream::kEof) eof = true;
    if (n == Stream::kError) error = true;
    return;
  }
}

void StreamSide::deliver(const std::string& bytes) {
  s_->feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  drain();
  s_->release_input();  // `bytes` goes away
}

RawSide::RawSide(SSL_CTX* ctx, bool server, const std::function<void(SSL*)>& prepare) : ssl_(SSL_new(ctx)) {
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(in_, -1);
  SSL_set_bio(ssl_.get(), in_, out_);
  if (prepare) prepare(ssl_.get());
  if (server) {
    SSL_set_accept_state(ssl_.get());
  } else {
    SSL_set_connect_state(ssl_.get());
    step();
  }
}

RawSide::~RawSide() {
  if (done()) SSL_set_shutdown(ssl_.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
}

void RawSide::step() {
  if (failed) return;
  if (!done()) {
    const int r = SSL_do_handshake(ssl_.get());
    if (r != 1) {
      const int code = SSL_get_error(ssl_.get(), r);
      if (code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE) {
        failed = true;
        error_text = openssl_error("handshake failed");
      }
      return;
    }
  }
  char buf[16384];
  for (;;) {
    const int n = SSL_read(ssl_.get(), buf, sizeof(buf));
    if (n > 0) {
      got.append(buf, static_cast<size_t>(n));
      continue;
    }
    const int code = SSL_get_error(ssl_.get(), n);
    if (code == SSL_ERROR_ZERO_RETURN) eof = true;
    if (code != SSL_ERROR_WANT_READ && code != SSL_ERROR_ZERO_RETURN) error = true;
    ERR_clear_error();
    return;
  }
}

std::string RawSide::take_output() {
  char* data = nullptr;
  const long n = BIO_get_mem_data(out_, &data);
  std::string bytes(data, static_cast<size_t>(n > 0 ? n : 0));
  (void)BIO_reset(out_);
  return bytes;
}

void RawSide::deliver(const std::string& bytes) {
  BIO_write(in_, bytes.data(), static_cast<int>(bytes.size()));
  step();
}

void RawSide::write(const std::string& data) { SSL_write(ssl_.get(), data.data(), static_cast<int>(data.size())); }

void run(Side& a, Side& b, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    bool moved = false;
    for (auto [from, to] : {std::pair<Side*, Side*>{&a, &b}, std::pair<Side*, Side*>{&b, &a}}) {
      const std::string bytes = from->take_output();
      if (bytes.empty()) continue;
      to->deliver(bytes);
      moved = true;
    }
    if (!moved) return;
  }
}

}  // namespace ringlb::tls::pki
