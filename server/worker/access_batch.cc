#include "server/worker/access_batch.h"

#include <time.h>

#include "server/access_log/access_log.h"
#include "server/proxy/snapshot_ref.h"
#include "server/worker/context.h"

namespace ringlb::worker {
namespace {

constexpr size_t kFlushBytes = 64 * 1024;

}  // namespace

void AccessBatch::log(uint32_t id, metrics::CloseReason reason) {
  const proxy::Conn& conn = ctx_.conns[id];
  const uint64_t now_ns = ctx_.now_ns;
  timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  const int64_t now_unix_us = static_cast<int64_t>(wall.tv_sec) * 1'000'000 + wall.tv_nsec / 1000;
  AccessRecord r;
  r.start_unix_us = now_unix_us - static_cast<int64_t>((now_ns - conn.start_ns) / 1000);
  r.client = conn.has_peer_name ? reinterpret_cast<const sockaddr*>(&ctx_.peer_names[id]) : nullptr;
  r.listener = ctx_.shared.listen_bound[conn.listener].get();
  r.listener_name = &ctx_.shared.routes[conn.listener].name;  // set before it accepted, never changed
  if (conn.snap != nullptr) r.cluster = &ctx_.shared.backends.cluster_name(conn.cluster);
  if (conn.has_server_name) r.sni = &ctx_.server_names[id];
  if (conn.backend_index >= 0) {
    r.backend = &conn.snap->snapshot->backends[static_cast<size_t>(conn.backend_index)].name;
  }
  r.worker = ctx_.index;
  r.queue_us = static_cast<int64_t>(conn.queue_wait_ns / 1000);
  r.connect_attempts = conn.attempts;
  if (conn.connected_ns != 0) r.connect_us = static_cast<int64_t>((conn.connected_ns - conn.connect_start_ns) / 1000);
  r.duration_us = static_cast<int64_t>((now_ns - conn.start_ns) / 1000);
  r.bytes_from_client = conn.bytes[proxy::kUp];
  r.bytes_from_backend = conn.bytes[proxy::kDown];
  r.close_reason = metrics::close_reason_name(reason);
  append_access(ctx_.config.access_log_format, r, &batch_);
  ++lines_;
  // Handed over at each tick, or sooner when a burst of closes makes the batch large.
  if (batch_.size() >= kFlushBytes) flush();
}

void AccessBatch::flush() {
  if (lines_ == 0) return;
  ctx_.shared.access_log->submit(&batch_, lines_);
  lines_ = 0;
}

}  // namespace ringlb::worker
