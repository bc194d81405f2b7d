// What the handshake callbacks of a context (server_context.h, client_context.h) learn about one
// connection: the stream (stream.h) attaches it to its SSL (SSL_set_app_data) for as long as the
// connection lives.
#pragma once

#include <cstdint>
#include <string>

namespace ringlb::tls {

class Certificate;

struct HandshakeNotes {
  std::string server_name;                // the SNI, lower case ("" without one)
  const Certificate* certificate = nullptr;  // the certificate served
  uint32_t backend = 0;                   // origination: whose session a new ticket is
};

}  // namespace ringlb::tls
