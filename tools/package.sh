#!/usr/bin/env bash
# Builds the Debian package ringlb_VERSION_amd64.deb (VERSION from server/base/version.h) with
# dpkg-deb, into OUTDIR (default: the current directory), and prints its path.
# usage: tools/package.sh [OUTDIR] [RINGLB_BINARY]   (default: bazel build //server:ringlb)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath "${1:-.}")
binary=${2:-}

version=$(sed -n 's/.*kVersion\[\] = "\([^"]*\)".*/\1/p' "$repo/server/base/version.h")
[ -n "$version" ] || { echo "package: no kVersion in server/base/version.h" >&2; exit 1; }
# The changelog's newest entry must name the same version, or lintian (and dpkg) disagree.
changelog_version=$(sed -n '1s/^ringlb (\([^)]*\)).*/\1/p' "$repo/packaging/debian/changelog")
[ "$changelog_version" = "$version" ] || {
  echo "package: packaging/debian/changelog is at $changelog_version, server/base/version.h at $version" >&2
  exit 1
}
if [ -z "$binary" ]; then
  (cd "$repo" && bazel build -c opt //server:ringlb >&2)
  binary=$repo/bazel-bin/server/ringlb
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/ringlb_${version}_amd64
doc=$root/usr/share/doc/ringlb
install -d "$root/DEBIAN" "$root/usr/sbin" "$root/lib/systemd/system" "$root/etc/ringlb" \
  "$root/usr/share/man/man8" "$root/usr/share/man/man5" "$root/usr/share/ringlb" "$doc/examples"

# Stripped (the build keeps -g): what Debian ships, debug symbols would be a -dbgsym package.
install -m 0755 "$binary" "$root/usr/sbin/ringlb"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$root/usr/sbin/ringlb"
install -m 0644 "$repo/packaging/ringlb.service" "$repo/packaging/ringlb@.service" "$root/lib/systemd/system/"
install -m 0644 "$repo/packaging/ringlb.toml" "$root/etc/ringlb/ringlb.toml"
gzip -9n < "$repo/man/ringlb.8" > "$root/usr/share/man/man8/ringlb.8.gz"
gzip -9n < "$repo/man/ringlb.toml.5" > "$root/usr/share/man/man5/ringlb.toml.5.gz"
install -m 0644 "$repo/metrics/grafana-dashboard.json" "$repo/metrics/alerts.yml" "$root/usr/share/ringlb/"
install -m 0644 "$repo/packaging/debian/copyright" "$doc/copyright"
gzip -9n < "$repo/packaging/debian/changelog" > "$doc/changelog.gz"
install -m 0644 "$repo/examples/ringlb.toml" "$doc/examples/ringlb.toml"
install -m 0755 "$repo/packaging/debian/postinst" "$repo/packaging/debian/postrm" "$root/DEBIAN/"
chmod 0644 "$root"/usr/share/man/*/*.gz "$doc/changelog.gz"

# The shared libraries' packages, as dpkg-shlibdeps finds them (it wants a debian/control).
mkdir -p "$work/shlibs/debian"
printf 'Source: ringlb\n\nPackage: ringlb\nArchitecture: amd64\n' > "$work/shlibs/debian/control"
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O "$root/usr/sbin/ringlb" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "package: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

installed_kib=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: ringlb
Version: $version
Architecture: amd64
Maintainer: ringlb maintainers <maintainers@users.noreply.h-seed-18316077.example>
Installed-Size: $installed_kib
Depends: $shlibs, adduser
Section: net
Priority: optional
Description: io_uring TCP (layer 4) load balancer
 ringlb accepts TCP connections on an io_uring, hands them to worker threads
 with one io_uring each, and proxies them to health-checked backends chosen by
 round robin, least connections, power of two choices or Maglev hashing.
 .
 The package installs a Type=notify systemd unit that runs as the ringlb user
 with CAP_NET_BIND_SERVICE only, and enables nothing: edit
 /etc/ringlb/ringlb.toml, then systemctl enable --now ringlb.
CONTROL
echo /etc/ringlb/ringlb.toml > "$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"

deb=$out/ringlb_${version}_amd64.deb
dpkg-deb --root-owner-group --build "$root" "$deb" >&2
echo "$deb"
