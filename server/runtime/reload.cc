#include "server/runtime/reload.h"

#include "server/accept/acceptor.h"
#include "server/base/log.h"
#include "server/config/command_line.h"
#include "server/config/udp_config.h"
#include "server/control/service_notify.h"
#include "server/discovery/cluster_publisher.h"
#include "server/discovery/dns_resolver.h"
#include "server/discovery/etcd_discovery.h"
#include "server/runtime/summary.h"

namespace ringlb {
namespace {

// Reads the config again into *fresh and applies it; *changed gets the clusters republished. An
// error (a bad file, a listener that cannot be planned, a cluster that cannot be published)
// says why, and nothing was applied.
Status apply(const ReloadTargets& t, int argc, const char* const* argv, Config* fresh,
             std::vector<std::string>* changed) {
  std::string print;
  // The same path as at start-up: argv again, so --config FILE is read again.
  RINGLB_RETURN_IF_ERROR(parse_config(argc, argv, fresh, &print));
  if (const std::string why = udp_not_served(*fresh); !why.empty()) return Status::error(why);
  if (!print.empty()) return Status::error("the command line does not run ringlb");
  // Listeners added, removed or changed: matched by name, new ones get new indexes.
  Acceptor::ListenerPlan plan;
  RINGLB_RETURN_IF_ERROR(t.acceptor->plan_listeners(*fresh, &plan));
  if (std::string why = t.publisher->publish_file(*fresh, changed, &plan.indexes); !why.empty()) {
    t.acceptor->cancel_listeners(plan);
    return Status::error(why);
  }
  t.etcd->configure(*fresh);   // prefixes added or removed, another etcd
  t.resolver->update(*fresh);  // new names are looked up, removed ones withdrawn
  // The policies name the new indexes (and mark the removed ones) before these accept.
  for (const std::string& line : t.acceptor->apply_listeners(plan)) {
    log(LogLevel::kError, "reload: %s", line.c_str());
  }
  return {};
}

std::string joined(const std::vector<std::string>& items) {
  std::string text;
  for (const std::string& item : items) text += (text.empty() ? "" : ", ") + item;
  return text;
}

}  // namespace

std::vector<std::string> not_applied_at_reload(const Config& running, const Config& fresh) {
  std::vector<std::string> out;
  auto check = [&](bool differs, const char* what) {
    if (differs) out.push_back(std::string(what) + " (restart, or upgrade with --takeover)");
  };
  check(running.workers != fresh.workers, "--workers");
  check(running.max_connections != fresh.max_connections, "--max-connections");
  check(running.buffer_size != fresh.buffer_size, "--buffer-size");
  check(running.buffers_per_worker != fresh.buffers_per_worker, "--buffers");
  check(running.flow_buffers != fresh.flow_buffers, "--flow-buffers");
  check(running.recv_multishot != fresh.recv_multishot, "--recv");
  check(running.backlog != fresh.backlog, "--backlog");
  check(running.cpus != fresh.cpus, "--cpu-affinity");
  check(running.acceptor_batch != fresh.acceptor_batch, "--acceptor-scheduling");
  check(running.iowq_batch != fresh.iowq_batch, "--iowq-scheduling");
  check(running.metrics_enabled != fresh.metrics_enabled ||
            running.metrics_listen.to_string() != fresh.metrics_listen.to_string(),
        "--metrics-listen");
  check(running.control_socket != fresh.control_socket, "--control-socket");
  check(running.access_log != fresh.access_log || running.access_log_format != fresh.access_log_format,
        "--access-log");
  check(running.access_log_interval != fresh.access_log_interval, "--access-log-interval");
  check(running.drain_timeout != fresh.drain_timeout, "--drain-timeout");
  // The resolver's c-ares channel is made once; its names are reloaded, its servers are not.
  auto servers = [](const ResolversConfig& r) {
    std::string text = std::to_string(r.timeout.count()) + "/" + std::to_string(r.attempts);
    for (const Address& a : r.nameservers) text += " " + a.to_string();
    return text;
  };
  check(servers(running.resolvers) != servers(fresh.resolvers), "[resolvers]");
  return out;
}

void reload(const ReloadTargets& targets, int argc, const char* const* argv) {
  // Whatever the outcome, READY=1 again after it: systemd waits for it to finish the reload.
  service::reloading();
  struct Ready {
    const SharedState& shared;
    ~Ready() { service::ready(status_line(shared)); }
  } ready{*targets.shared};
  // Log rotation: the file was moved away, or will be; write to a new one at the same path.
  if (targets.shared->access_log != nullptr) targets.shared->access_log->reopen();
  Config fresh;
  std::vector<std::string> changed;
  if (Status s = apply(targets, argc, argv, &fresh, &changed); !s.ok()) {
    std::string line;  // one log line, every error in it
    for (const std::string& error : s.lines()) line += (line.empty() ? "" : "; ") + error;
    log(LogLevel::kError, "reload failed: %s; keeping the running configuration", line.c_str());
    targets.shared->registry->reload_failures.add();
    return;
  }
  size_t backends = 0;
  const std::string clusters = clusters_summary(fresh, &backends);
  const std::string republished = joined(changed);
  const std::string not_applied = joined(not_applied_at_reload(targets.shared->config, fresh));
  targets.shared->registry->reloads.add();
  log(LogLevel::kInfo, "reloaded: %zu backends (%s); changed: %s%s%s", backends, clusters.c_str(),
      republished.empty() ? "none" : republished.c_str(), not_applied.empty() ? "" : "; not applied: ",
      not_applied.c_str());
}

}  // namespace ringlb
