#include "server/control/json_answers.h"

#include "server/control/backends_table.h"
#include "server/status/backend_json.h"
#include "server/status/connections_json.h"

namespace ringlb::control {
namespace {

using Json = nlohmann::ordered_json;

std::string text(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n"; }

}  // namespace

std::string error_json(const std::string& message) {
  Json j;
  j["error"] = message;
  return text(j);
}

std::string backends_json_answer(SharedState& shared) { return text(status::backends_json(shared)); }

std::string overrides_json_answer(const discovery::ClusterPublisher& publisher) {
  Json list = Json::array();
  for (const discovery::BackendView& v : publisher.backends()) {
    if (!v.runtime_weight && v.admin == discovery::Admin::kEnabled) continue;
    Json o;
    o["cluster"] = v.cluster;
    o["name"] = v.name;
    o["runtime_weight"] = v.runtime_weight ? Json(*v.runtime_weight) : Json(nullptr);
    o["admin"] = discovery::admin_name(v.admin);
    Json commands = Json::array();
    Command c;
    c.cluster = v.cluster;
    c.backend = v.name;
    if (v.runtime_weight) {
      c.verb = Verb::kSetWeight;
      c.weight = v.runtime_weight;
      commands.push_back(format_command(c));
    }
    if (v.admin != discovery::Admin::kEnabled) {
      c.verb = v.admin == discovery::Admin::kDrain ? Verb::kDrain : Verb::kDisable;
      commands.push_back(format_command(c));
    }
    o["commands"] = std::move(commands);
    list.push_back(std::move(o));
  }
  Json out;
  out["overrides"] = std::move(list);
  return text(out);
}

std::string change_json_answer(SharedState& shared, const Command& c, const std::string& done) {
  Command plain = c;
  plain.json = false;
  Json out;
  out["ok"] = true;
  out["command"] = format_command(plain);
  out["result"] = done;
  out["backend"] = nullptr;
  for (const BackendStatus& s : backend_statuses(shared)) {
    if (s.cluster == c.cluster && s.backend == c.backend) out["backend"] = status::backend_json(s, shared);
  }
  return text(out);
}

std::string connections_json_answer(const std::string& diagnostics) {
  const Json all = status::parse_connections(diagnostics);
  return text(status::connections_page(all, 0, all.size()));
}

}  // namespace ringlb::control
