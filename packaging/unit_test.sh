#!/usr/bin/env bash
# systemd-analyze verify passes on both units, and their hardening does not drift apart.
# verify checks that ExecStart's binary exists and that the Documentation= man pages resolve:
# the test verifies copies whose /usr/sbin/ringlb is the binary just built, with MANPATH at the
# pages just written (the package test verifies the installed units as they are).
# And the shipped /etc/ringlb/ringlb.toml is one this build starts with (check: exit 0, no note).
# usage: unit_test.sh RINGLB CONFIG UNIT... -- MANPAGE...
set -uo pipefail
ringlb=$(realpath "$1"); config=$2; shift 2
units=(); while [ "$1" != "--" ]; do units+=("$1"); shift; done; shift
tmp=${TEST_TMPDIR:-$(mktemp -d)}
mkdir -p "$tmp/units" "$tmp/man/man8" "$tmp/man/man5"
for page in "$@"; do cp "$page" "$tmp/man/man${page##*.}/"; done
failed=0
fail() { echo "FAIL: $*"; failed=1; }

for unit in "${units[@]}"; do
  name=$(basename "$unit")
  sed "s|/usr/sbin/ringlb|$ringlb|g" "$unit" > "$tmp/units/$name"
  target="$tmp/units/$name"
  # A template is verified as an instance of itself.
  [[ "$name" == *@.service ]] && { cp "$target" "$tmp/units/${name/@/@a}"; target="$tmp/units/${name/@/@a}"; }
  out=$(cd "$tmp/units" && MANPATH="$tmp/man" systemd-analyze verify "$target" 2>&1)
  rc=$?
  [ "$rc" -eq 0 ] && [ -z "$out" ] || fail "systemd-analyze verify $name (exit $rc):"$'\n'"$out"
  grep -q '^Type=notify$' "$unit" || fail "$name: not Type=notify"
  grep -q '^CapabilityBoundingSet=CAP_NET_BIND_SERVICE$' "$unit" || fail "$name: capabilities"
  grep -qE '^SystemCallFilter=.*io_uring_setup io_uring_enter io_uring_register' "$unit" || fail "$name: io_uring syscalls"
done

# The hardening and limits of the pair are the same: [Service] lines other than the control
# socket and takeover ones, comments and blank lines.
service_lines() {
  sed -n '/^\[Service\]/,/^\[/p' "$1" | grep -vE '^(#|$|ExecStart=|ExecStartPost=|RuntimeDirectoryPreserve=)'
}
if [ "${#units[@]}" -eq 2 ]; then
  d=$(diff <(service_lines "${units[0]}") <(service_lines "${units[1]}"))
  [ -z "$d" ] || fail "the [Service] sections differ:"$'\n'"$d"
fi
check_err=$("$ringlb" check --config "$config" 2>&1 >/dev/null)
rc=$?
[ "$rc" -eq 0 ] && [ -z "$check_err" ] || fail "ringlb check --config $config (exit $rc): $check_err"
[ "$failed" -eq 0 ] && echo "units: ok"
exit "$failed"
