// How phases submit work: every request goes through here, which names the session in its
// user_data and counts it in flight (the driver's count: nothing else touches Session::inflight),
// and every provided buffer is taken and given back here, to the oldest flow waiting for one.
// Phases never call each other: a buffer granted to another session's flow is handed to that
// flow by the driver once the current completion is done (take_grants).
#pragma once

#include <cstdint>
#include <vector>

#include "server/base/address.h"
#include "server/proxy/env.h"
#include "server/proxy/ops.h"
#include "server/proxy/session.h"
#include "server/uring/user_data.h"

namespace ringlb::proxy {

class Io {
 public:
  Io(Ops& ops, Env& env, std::vector<Session>& sessions) : ops_(ops), env_(env), sessions_(sessions) {}
  Io(const Io&) = delete;
  Io& operator=(const Io&) = delete;

  Ops& ops() { return ops_; }
  uint64_t data(const Session& s, Tag tag) const;

  void peer_name(Session& s, Tag tag);
  // A recv of flow `dir` (from the client for kUp, the backend for kDown): into the flow's
  // granted buffer when it has one, else one from the provided ring. Returns its user_data.
  uint64_t recv(Session& s, Dir dir, Tag tag, RecvSpec spec);
  void recv_exact(Session& s, Tag tag, void* dst, uint32_t len);
  // To the client (kDown) or the backend (kUp).
  void send_buffer(Session& s, Dir dir, Tag tag, int32_t buf, uint32_t off, uint32_t len);
  void send(Session& s, Dir dir, Tag tag, const void* bytes, uint32_t len);
  void open_socket(Session& s, int family);  // Tag::kConnectSocket; the driver sets s.backend
  void connect(Session& s, const Address& to, const __kernel_timespec* timeout);  // Tag::kConnect
  void set_recv_lowat(Session& s, const int* value, bool before_next);
  // SHUT_WR towards the client (kDown) or the backend (kUp); submitted at the end of the batch
  // (submit_deferred), but counted in flight now, which keeps the slot open until it completes.
  void shutdown_write(Session& s, Dir dir);
  void cancel(Session& s, uint64_t target);  // Tag::kPumpCancel
  // A failed connect's socket: closed, and the session has no backend side again.
  void close_backend(Session& s);

  uint8_t* buffer(int32_t buf) { return ops_.buffer(buf); }
  // The provided buffer a completion with `cqe_flags` carries (-1: none), now in use.
  int32_t take_buffer(uint32_t cqe_flags);
  // The buffer a recv of `flow` completed into: its granted one, or what the completion carries.
  int32_t take_recv_buffer(Flow& flow, uint32_t cqe_flags);
  // Gives a buffer back (no-op for -1): to the oldest flow still waiting for one, or to the
  // ring. True when it went to a waiter.
  bool release(int32_t buf);
  // A recv of flow `dir` found the ring empty (-ENOBUFS). True: the flow waits its turn (a
  // grant comes through the driver). False: retry the recv at once.
  bool wait_for_buffer(Session& s, Dir dir);
  // Grants made since the last call: each flow now holds its buffer in Flow::granted.
  std::vector<FlowRef>& grants() { return grants_; }
  // Whether a queued waiter still wants a buffer: the same session, still waiting.
  bool still_waiting(FlowRef ref) const;

  // The maxconn queue.
  void enqueue(Session& s);

  // Submits the shutdowns of this batch (the worker calls it last before entering the kernel).
  void submit_deferred();

 private:
  struct Deferred {
    uint32_t id;
    uint8_t dir;
    uint8_t gen;
  };

  Ops& ops_;
  Env& env_;
  std::vector<Session>& sessions_;
  std::vector<FlowRef> grants_;
  std::vector<Deferred> shutdowns_;
};

}  // namespace ringlb::proxy
