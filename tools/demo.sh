#!/usr/bin/env bash
# ringlb's main job on a built-in default: two local nginx backends, ringlb in front of them, a
# short bounded wrk run through it, then the per-backend numbers from /metrics. Stops everything
# it started, also when interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bazel build -c opt //server:ringlb >/dev/null 2>&1 || bazel build -c opt //server:ringlb

work=$(mktemp -d /tmp/ringlb-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

LISTEN=${LISTEN:-127.0.0.1:18000}
METRICS=${METRICS:-127.0.0.1:19090}
B1=${B1:-18081}
B2=${B2:-18082}
DURATION=${DURATION:-5s}

cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:$B1; location / { return 200 "backend one\n"; } }
  server { listen 127.0.0.1:$B2; location / { return 200 "backend two\n"; } }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work" -g "daemon on;"

./bazel-bin/server/ringlb --listen "$LISTEN" --backend "127.0.0.1:$B1" \
  --backend "127.0.0.1:$B2" --metrics-listen "$METRICS" 2>"$work/ringlb.log" &
pids+=($!)
for _ in $(seq 50); do grep -q "workers," "$work/ringlb.log" 2>/dev/null && break; sleep 0.1; done
cat "$work/ringlb.log"

echo
echo "== two requests through ringlb =="
curl -s "http://$LISTEN/"
curl -s "http://$LISTEN/"
echo
echo "== wrk -t1 -c50 -d$DURATION --latency http://$LISTEN/ (keep-alive) =="
wrk -t1 -c50 -d"$DURATION" --latency "http://$LISTEN/"
echo
echo "== wrk -t1 -c50 -d$DURATION -H 'Connection: close' http://$LISTEN/ =="
wrk -t1 -c50 -d"$DURATION" -H "Connection: close" "http://$LISTEN/"
echo
echo "== from http://$METRICS/metrics =="
curl -s "http://$METRICS/metrics" | grep -E '^ringlb_(connections_accepted_total|backend_connect_attempts_total|connections_closed_total\{reason="(client_eof|backend_eof)"|cqe_latency_seconds_count)' || true
