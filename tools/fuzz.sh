#!/usr/bin/env bash
# Fuzzes every libFuzzer entry point for SECONDS each (default 60): the PROXY protocol parser and
# header reader, the TLS ClientHello reader, the config file plus the flag value parsers, the
# control socket's command parser, the TLS server engine (server/tls/stream) and the QUIC header reader.
# Builds them with clang-16 (-fsanitize=fuzzer,address,undefined) in a Bazel output base of its
# own, so the normal gcc build stays cached. Each starts from its seed corpus in the repository
# (copied: what it finds stays in a temporary directory); a crash, a leak, a timeout or a broken
# invariant leaves its input in the printed directory and fails the run.
#   tools/fuzz.sh 10                 # CI: 10 s each
#   FUZZ_RUNS=10000000 tools/fuzz.sh # until 10 million executions each (bench/README)
set -uo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
bash tools/setup.sh || exit 1
out=$(mktemp -d /tmp/ringlb-fuzz.XXXXXX)
# One output base per checkout: a base used from another checkout keeps runfiles pointing there.
base=/tmp/ringlb-fuzz-bazel-$(pwd | md5sum | cut -c1-8)
# -Wno-... : clang's extra warnings in toml++ and our code are not this script's business.
# --symlink_prefix=/: no bazel-* links, which would otherwise point the workspace at this output base.
CC=clang-16 CXX=clang++-16 bazel --output_base="$base" build --symlink_prefix=/ \
  --copt=-fsanitize=fuzzer-no-link,address,undefined --linkopt=-fsanitize=address,undefined --linkopt=-fsanitize-link-c++-runtime \
  --copt=-fno-sanitize-recover=undefined --copt=-Wno-error --copt=-fno-omit-frame-pointer \
  --compilation_mode=opt \
  //server/fuzz:config_fuzzer //server/fuzz:proxy_protocol_fuzzer //server/fuzz:client_hello_fuzzer //server/fuzz:control_command_fuzzer //server/fuzz:tls_stream_fuzzer //server/fuzz:quic_fuzzer //server/fuzz:tls_accept_fuzzer \
  >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; echo "fuzz: build failed"; exit 1; }
bin=$(CC=clang-16 bazel --output_base="$base" info bazel-bin 2>/dev/null)
declare -A corpus=(
  [config]=tests/fuzz/corpus/config
  [proxy_protocol]=tests/fuzz/corpus/proxy_protocol
  [client_hello]=tests/protocol/corpus/client_hello
  [control_command]=tests/fuzz/corpus/control_command
  [tls_stream]=tests/fuzz/corpus/tls_stream
  [quic]=tests/fuzz/corpus/quic
  [tls_accept]=tests/fuzz/corpus/tls_accept
)
failed=0
for name in config proxy_protocol client_hello control_command tls_stream quic tls_accept; do
  work="$out/$name"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp "${corpus[$name]}"/* "$work/corpus/"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$work/artifacts/")
  [ -n "${FUZZ_RUNS:-}" ] && args=(-runs="$FUZZ_RUNS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
                                   -artifact_prefix="$work/artifacts/")
  "$bin/server/fuzz/${name}_fuzzer" "${args[@]}" "$work/corpus" >"$work/log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" | grep -o '[0-9]*$')
  if [ $rc -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
    echo "fuzz: $name FAILED (exit $rc) after ${execs:-?} executions; input in $work/artifacts"
    tail -20 "$work/log"
    failed=1
  else
    echo "fuzz: $name clean: ${execs:-?} executions in ${seconds}s ($(ls "$work/corpus" | wc -l) corpus entries)"
  fi
done
exit $failed
