#!/usr/bin/env bash
# The Debian package end to end, on this machine (root; changes the system, then restores it):
# build it with tools/package.sh, dpkg -i, ringlb --version, ringlb check on the installed
# config, systemd-analyze verify on the installed units, dpkg -r (the conffile stays), dpkg -P
# (the conffile and the ringlb user go); lintian has no errors. Run by //tests:package_test, tagged manual.
# usage: package_test.sh PACKAGE_SH RINGLB
set -uo pipefail
package_sh=$1 ringlb=$2
failed=0
fail() { echo "FAIL: $*"; failed=1; }

[ "$(id -u)" -eq 0 ] || { echo "package_test: needs root (dpkg -i)"; exit 1; }
if dpkg-query -W -f='${Status}' ringlb 2>/dev/null | grep -q "installed"; then
  echo "package_test: a ringlb package is installed already; not touching it"
  exit 1
fi
user_before=$(getent passwd ringlb || true)
out=${TEST_TMPDIR:-$(mktemp -d)}
cleanup() { dpkg -P ringlb >/dev/null 2>&1 || true; }
trap cleanup EXIT

deb=$(bash "$package_sh" "$out" "$ringlb" 2>"$out/package.log") || { cat "$out/package.log"; fail "package.sh"; exit 1; }
version=$(dpkg-deb -f "$deb" Version)
[ "$(basename "$deb")" = "ringlb_${version}_amd64.deb" ] || fail "package name $(basename "$deb")"
[ "$(dpkg-deb -f "$deb" Architecture)" = amd64 ] || fail "architecture"
contents=$(dpkg-deb -c "$deb")
for f in usr/sbin/ringlb lib/systemd/system/ringlb.service etc/ringlb/ringlb.toml usr/share/man/man8/ringlb.8.gz \
         usr/share/man/man5/ringlb.toml.5.gz usr/share/ringlb/alerts.yml usr/share/ringlb/grafana-dashboard.json \
         usr/share/doc/ringlb/copyright usr/share/doc/ringlb/changelog.gz; do
  grep -qE " \./$f\$" <<<"$contents" || fail "the package has no /$f"
done
[ "$(dpkg-deb -I "$deb" conffiles)" = /etc/ringlb/ringlb.toml ] || fail "conffiles"
# lintian: no errors (warnings are allowed; none today, two infos: hardening-no-fortify-functions,
# package-supports-alternative-init-but-no-init.d-script).
if command -v lintian >/dev/null; then
  lint=$(lintian "$deb" 2>&1)
  ! grep -q '^E: ' <<<"$lint" || fail "lintian errors:"$'\n'"$lint"
  echo "lintian: ${lint:-clean}"
fi

dpkg -i "$deb" > "$out/install.log" 2>&1 || { cat "$out/install.log"; fail "dpkg -i"; }
[ "$(/usr/sbin/ringlb --version)" = "ringlb $version" ] || fail "ringlb --version: $(/usr/sbin/ringlb --version)"
check=$(/usr/sbin/ringlb check --config /etc/ringlb/ringlb.toml 2>&1) || fail "ringlb check: $check"
[ "$check" = "/etc/ringlb/ringlb.toml: ok (1 listener, 1 cluster, 1 backend)" ] || fail "ringlb check said: $check"
getent passwd ringlb >/dev/null || fail "postinst made no ringlb user"
# Enabled or started nothing by surprise.
[ ! -e /etc/systemd/system/multi-user.target.wants/ringlb.service ] || fail "ringlb.service was enabled"
# The installed units verify as they are (/usr/sbin/ringlb and the man pages exist now).
for unit in ringlb.service ringlb@a.service; do
  src=/lib/systemd/system/${unit/@a/@}
  dir=$out/verify; mkdir -p "$dir"; cp "$src" "$dir/$unit"
  v=$(cd "$dir" && systemd-analyze verify "$dir/$unit" 2>&1) && [ -z "$v" ] || fail "verify $unit: $v"
done
man -w ringlb.toml >/dev/null 2>&1 || fail "man -w ringlb.toml finds no page"

dpkg -r ringlb > "$out/remove.log" 2>&1 || { cat "$out/remove.log"; fail "dpkg -r"; }
[ ! -e /usr/sbin/ringlb ] || fail "dpkg -r left /usr/sbin/ringlb"
[ -e /etc/ringlb/ringlb.toml ] || fail "dpkg -r removed the conffile (only purge should)"
dpkg -P ringlb > "$out/purge.log" 2>&1 || { cat "$out/purge.log"; fail "dpkg -P"; }
[ ! -e /etc/ringlb/ringlb.toml ] || fail "dpkg -P left /etc/ringlb/ringlb.toml"
if [ -z "$user_before" ]; then
  ! getent passwd ringlb >/dev/null || fail "dpkg -P left the ringlb user"
fi
[ "$failed" -eq 0 ] && echo "package: ok"
exit "$failed"
