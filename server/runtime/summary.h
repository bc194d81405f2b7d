// What the log lines and systemd's status say: "web: roundrobin, api: maglev", "2 listeners",
// "serving 3 connections".
#pragma once

#include <cstddef>
#include <string>

#include "server/config/config.h"
#include "server/runtime/shared_state.h"

namespace ringlb {

// "1 listener", "2 listeners".
std::string plural(size_t n, const char* what);

// "web: roundrobin, api: maglev", and the backends of every cluster in *backends.
std::string clusters_summary(const Config& config, size_t* backends);

// systemd's STATUS= line (systemctl status shows it): "serving 3 connections".
std::string status_line(const SharedState& shared);

}  // namespace ringlb
