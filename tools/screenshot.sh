#!/usr/bin/env bash
# Refreshes docs/status-page.png: the status page of a real ringlb (two listeners, two clusters,
# real backends, a minute of traffic, one backend drained and one killed) in headless Chromium,
# by the browser test's own script (tests/status/status_page_test.py). About 80 s.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bazel build //server:ringlb
export HOME="${HOME:-$(mktemp -d)}"
/usr/bin/python3 tests/status/status_page_test.py --ringlb bazel-bin/server/ringlb --screenshot docs/status-page.png
