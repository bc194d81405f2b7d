#!/usr/bin/env bash
# Installs every Debian package ringlb's build, tests, demo and benchmarks need.
# Idempotent: when everything is present it prints nothing and touches nothing.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap g++ git
  liburing-dev libboost-program-options-dev prometheus-cpp-dev
  libbenchmark-dev libgtest-dev libgmock-dev
  wrk haproxy nginx-light libnginx-mod-stream prometheus
  linux-perf procps iproute2 python3 gnuplot-nox
  iperf3 libtomlplusplus-dev clang-16 libfuzzer-16-dev libclang-rt-16-dev
  libsystemd-dev lintian groff-base libc-ares-dev dnsmasq
  libssl-dev openssl redis-server
  llvm  # llvm-symbolizer: TSan reports with file and line (tools/tsan.sh)
  libcurl4-openssl-dev nlohmann-json3-dev etcd-server etcd-client
  nftables  # nft: the network-fault test blackholes a backend (tests/netfault)
  python3-cryptography  # tests/fuzz/make_quic_corpus.py protects the seed QUIC Initials
  libcivetweb-dev zlib1g-dev  # the metrics listener's HTTP server (metrics/http_server), gzip
  # The status page in a real browser (tests/status, tools/screenshot.sh): headless Chromium over
  # the DevTools protocol from Debian's Python, and a font for its text.
  chromium python3-websocket fonts-dejavu-core
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages (${missing[*]}) and not root; run as root" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian nginx/haproxy/prometheus packages start system services; ringlb's tests and benchmarks
# start their own instances on loopback, so stop the system ones to free their ports.
for svc in nginx haproxy prometheus prometheus-node-exporter; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
pkill -x nginx 2>/dev/null || true
pkill -x haproxy 2>/dev/null || true
pkill -x prometheus 2>/dev/null || true
exit 0
