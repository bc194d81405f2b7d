#!/usr/bin/env bash
# //metrics:alerts_test: the alert rules load (promtool check rules) and behave as their unit
# tests say (promtool test rules). Fails on any problem promtool reports, or without promtool.
set -euo pipefail

dir="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-ringlb}/metrics"
[ -f "$dir/alerts.yml" ] || dir="$(dirname "$0")"
promtool="$(command -v promtool || true)"
[ -n "$promtool" ] || promtool=/usr/bin/promtool
if [ ! -x "$promtool" ]; then
  echo "alerts_test: promtool not found (Debian package prometheus; tools/setup.sh installs it)" >&2
  exit 1
fi

"$promtool" check rules "$dir/alerts.yml"
# Relative to the test file: its rule_files entry names alerts.yml next to it.
cd "$dir"
"$promtool" test rules alerts_test.yml
