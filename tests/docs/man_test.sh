#!/usr/bin/env bash
# The man pages render without a single groff warning, and stay complete: every option of
# `ringlb --help` is in ringlb(8), every key of the settings table and of the file's structure
# is in ringlb.toml(5).
# usage: man_test.sh RINGLB RINGLB_8 RINGLB_TOML_5 SETTINGS_TABLE_CC TLS_CONFIG_CC
set -uo pipefail
ringlb=$1 page8=$2 page5=$3 settings=$4 tls_config=$5
failed=0
fail() { echo "FAIL: $*"; failed=1; }

for page in "$page8" "$page5"; do
  warnings=$(groff -ww -z -man -Tutf8 "$page" 2>&1)
  [ -z "$warnings" ] || fail "$page: groff warnings:"$'\n'"$warnings"
  rendered=$(groff -man -Tutf8 "$page" 2>/dev/null | wc -l)
  [ "$rendered" -gt 20 ] || fail "$page: renders to $rendered lines"
done

# man(7) escapes the hyphen of an option: --max-connections is \-\-max\-connections.
escape() { sed 's/-/\\-/g' <<<"$1"; }

options=$("$ringlb" --help | grep -oE '^  (-h \[ )?--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+')
[ "$(wc -l <<<"$options")" -gt 30 ] || fail "too few options in --help: $options"
for opt in $options; do
  # As the tag of its own entry (.TP, then .B/.BI/.BR starting with it), not only in prose.
  grep -qE -- "^\.(B|BI|BR) (\\\\-h \", \" )?$(escape "$opt" | sed 's/\\/\\\\/g')( |\"|$)" "$page8" ||
    fail "ringlb.8 has no entry for $opt"
done
for word in "ringlb check" "ringlb ctl" SIGHUP SIGTERM SIGINT "EXIT STATUS"; do
  grep -qF -- "$word" "$page8" || fail "ringlb.8 lacks $word"
done

# Every name (and alias) in the settings table: {Level::kX, "name", "alias" or nullptr, ...
keys=$(grep -oE '\{Level::k[A-Za-z]+, "[a-z0-9-]+", ("[a-z0-9-]+"|nullptr)' "$settings" |
       grep -oE '"[a-z0-9-]+"' | tr -d '"' | sort -u)
[ "$(wc -l <<<"$keys")" -gt 30 ] || fail "too few keys read from $settings: $keys"
# And the keys of the file's structure (server/config/toml_config.cc), and of its TLS tables
# (kListenerTlsKeys and kClusterTlsKeys in server/config/tls_config.cc).
keys+=$'\n'"backends address name cluster sni sni-default tls"
tls_keys=$(tr '\n' ' ' <"$tls_config" | grep -oE 'k(Listener|Cluster)TlsKeys = \{[^}]*\}' |
           grep -oE '"[a-z0-9-]+"' | tr -d '"' | sort -u)
[ "$(wc -l <<<"$tls_keys")" -gt 10 ] || fail "too few keys read from $tls_config: $tls_keys"
keys+=$'\n'"$tls_keys"
for key in $keys; do
  # As a bold tag (.B, .BR) of the page, not only somewhere in its prose.
  grep -E '^\.(B|BR) ' "$page5" | grep -qE -- "(^|[ \"(])$(escape "$key" | sed 's/\\/\\\\/g')([ \"),]|$)" ||
    fail "ringlb.toml.5 lacks the key $key"
done

[ "$failed" -eq 0 ] && echo "man pages: ok"
exit "$failed"
