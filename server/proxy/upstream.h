// The upstream connector (HAProxy's backend.c connect_server, Envoy's TcpConnPool): picks a
// backend, makes a direct socket, connects with a linked timeout, retries other backends on
// refusal or timeout, queues clients while every backend that is up is full (the maxconn queue),
// and writes a send-proxy header before any client byte. Then the pump takes over.
#pragma once

#include <linux/time_types.h>

#include <cstdint>
#include <vector>

#include "server/protocol/proxy_protocol.h"
#include "server/proxy/conn.h"
#include "server/worker/admission_queue.h"

namespace ringlb::worker {
struct Context;
}

namespace ringlb::proxy {

class Upstream {
 public:
  explicit Upstream(worker::Context& ctx);
  Upstream(const Upstream&) = delete;
  Upstream& operator=(const Upstream&) = delete;

  // Picks a backend not yet tried and starts connecting; queues the client when only full
  // backends are left, or closes it when there is none.
  void connect(uint32_t id);
  void on_socket(uint32_t id, int res);
  // Sockets whose allocation found the table full, tried again after this batch's closes.
  void retry_sockets();
  void on_connect(uint32_t id, int res);
  void on_proxy_header(uint32_t id, int res);

  // Lets queued clients go as backends get room: after every batch of completions, and every
  // kQueuePollNs while any wait, for room made by other workers.
  void dispatch_queue();
  void on_queue_poll();
  // A queued connection is closing.
  void left_queue(uint32_t id);
  size_t queued() const { return queue_.size(); }

 private:
  // A PROXY protocol header on its way to the backend.
  struct ProxyHeader {
    char bytes[kMaxProxyHeader];
    uint8_t len = 0;
    uint8_t off = 0;
  };

  void submit_socket(uint32_t id);
  void enqueue(uint32_t id);
  void arm_queue_poll();
  void connect_failed(Conn& conn);
  void send_proxy_header(uint32_t id, ProxyProtocol version);
  void submit_proxy_header(uint32_t id);

  worker::Context& ctx_;
  worker::AdmissionQueue queue_;
  bool queue_poll_armed_ = false;
  __kernel_timespec queue_poll_ts_{};
  struct Retry {
    uint32_t id;
    uint8_t gen;
  };
  std::vector<Retry> socket_retries_;
  std::vector<ProxyHeader> proxy_headers_;  // by connection, sized on first use (send-proxy)
};

}  // namespace ringlb::proxy
