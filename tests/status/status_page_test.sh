#!/usr/bin/env bash
# Bazel's entry point: status_page_test.py with the ringlb it was built with, in Debian's Python
# (python3-websocket) and Debian's Chromium (tools/setup.sh installs both).
set -euo pipefail
export HOME="${TEST_TMPDIR:-$(mktemp -d)}"  # Chromium writes its profile and caches under it
exec /usr/bin/python3 "$2" --ringlb "$(realpath "$1")"
