#!/usr/bin/env bash
# Bazel's entry point: netfault_test.py with the ringlb it was built with.
set -euo pipefail
RINGLB_BINARY="$(realpath "$1")" exec python3 "$2"
