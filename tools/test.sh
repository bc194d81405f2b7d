#!/usr/bin/env bash
# Sets up the machine, builds everything and runs every test; ends with "N passed, M failed"
# counted from the test cases in Bazel's XML results (a target that crashed without a result
# counts as one failure). Extra arguments go to `bazel test` (for example --config=asan).
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

# This run's logs, apart from any other run's (several checkouts may test at once on one machine).
logs=$(mktemp -d /tmp/ringlb-test-XXXXXX)
trap 'rm -rf "$logs"' EXIT

# //tests:package_test installs and purges the Debian package (root only; it leaves the machine
# as it found it): tagged manual so `bazel test //...` alone does not, named here so CI does.
extra=()
[ "$(id -u)" -eq 0 ] && [ $# -eq 0 ] && extra=(//tests:package_test //tests/netfault:netfault_test)
bazel test "$@" //... "${extra[@]}" 2>&1 | grep -vE "^(Loading|Analyzing|\[[0-9,]+ / [0-9,]+\])" | tee "$logs/test.log"
bazel_rc=${PIPESTATUS[0]}

# Each fuzzer for a short bounded time (RINGLB_FUZZ_SECONDS, default 10; 0 skips): one result each.
fuzz_seconds="${RINGLB_FUZZ_SECONDS:-10}"
: >"$logs/fuzz.log"
if [ "$fuzz_seconds" != 0 ] && [ $# -eq 0 ]; then
  bash tools/fuzz.sh "$fuzz_seconds" 2>&1 | tee "$logs/fuzz.log"
fi

# The soak with faults in its short mode (bench/soak.py --ci, about a minute): one result.
: >"$logs/soak.log"
if [ "${RINGLB_SOAK:-1}" != 0 ] && [ $# -eq 0 ] && [ -x bazel-bin/server/ringlb ]; then
  soak=$(timeout 600 python3 bench/soak.py --ci --out "$logs/soak.json" 2>/dev/null | tail -1)
  case "$soak" in "soak: clean" | "soak: FAILED"*) ;; *) soak="soak: FAILED (no result: $soak)" ;; esac
  echo "$soak" | tee "$logs/soak.log"
fi

python3 - "$bazel_rc" "$logs" <<'PY'
import glob, os, re, sys
import xml.etree.ElementTree as ET
bazel_rc = int(sys.argv[1])
logs = sys.argv[2]
log = open(os.path.join(logs, "test.log"), errors="replace").read()
targets = re.findall(r"^(//\S+)\s+(?:\(cached\)\s+)?(PASSED|FAILED|TIMEOUT|NO STATUS|FLAKY|FAILED TO BUILD)", log, re.M)
passed = failed = 0
testlogs = os.path.realpath("bazel-testlogs")
for target, status in targets:
    path = os.path.join(testlogs, target[2:].replace(":", "/"), "test.xml")
    cases = []
    if status in ("PASSED", "FAILED", "FLAKY") and os.path.exists(path):
        try:
            cases = ET.parse(path).getroot().iter("testcase")
            cases = list(cases)
        except ET.ParseError:
            cases = []
    if not cases:
        if status == "PASSED":
            passed += 1
        else:
            failed += 1
        continue
    target_failed = 0
    for c in cases:
        if c.find("failure") is not None or c.find("error") is not None:
            target_failed += 1
    # A target that failed after its cases were written (a crash, a leak report) still fails.
    if status != "PASSED" and target_failed == 0:
        target_failed = 1
    failed += target_failed
    passed += len(cases) - min(target_failed, len(cases))
fuzz = open(os.path.join(logs, "fuzz.log"), errors="replace").read()
soak = open(os.path.join(logs, "soak.log"), errors="replace").read()
passed += len(re.findall(r"^soak: clean", soak, re.M))
failed += len(re.findall(r"^soak: FAILED", soak, re.M))
passed += len(re.findall(r"^fuzz: \S+ clean", fuzz, re.M))
failed += len(re.findall(r"^fuzz: \S+ FAILED", fuzz, re.M)) + len(re.findall(r"^fuzz: build failed", fuzz, re.M))
if bazel_rc != 0 and failed == 0:
    failed = 1  # the build itself failed
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
