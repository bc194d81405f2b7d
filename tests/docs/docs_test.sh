#!/usr/bin/env bash
# The documentation stays complete and its links stay good, as man_test.sh does for the man pages:
# - docs/configuration.md has a table row for every key of the settings table and of the file's
#   structure, and every option of `ringlb --help`;
# - README.md is at most 250 lines and keeps its two commands (tools/demo.sh, tools/test.sh);
# - every relative link of README.md and docs/*.md names a file that exists (and, with a
#   #fragment into a Markdown file, a heading of it), and so does every runbook of the alerts.
# Link targets are checked in the test's runfiles: a page that links to a new file needs it in
# tests/docs/BUILD's data.
# usage: docs_test.sh RINGLB SETTINGS_CC ALERTS_YML TLS_CONFIG_CC   (the pages are read from the runfiles)
set -uo pipefail
export LC_ALL=C
ringlb=$1 settings=$2 alerts=$3 tls_config=$4
root="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-ringlb}"
readme="$root/README.md" config="$root/docs/configuration.md"
failed=0
fail() { echo "FAIL: $*"; failed=1; }

pages=("$readme" "$root"/docs/*.md)
for page in "$readme" "$config" "$root/docs/operations.md" "$root/docs/architecture.md"; do
  [ -s "$page" ] || fail "${page#"$root"/} is missing or empty"
done

# --- README: short, with the two commands a newcomer runs first.
lines=$(wc -l <"$readme")
[ "$lines" -le 250 ] || fail "README.md has $lines lines (at most 250: the rest belongs in docs/)"
for cmd in tools/demo.sh tools/test.sh; do
  # A line of a fenced ```sh block that starts with the command.
  awk -v cmd="$cmd" '/^```/ { inside = !inside && ($0 == "```sh"); next }
                     inside && index($0, cmd) == 1 { found = 1 } END { exit !found }' "$readme" ||
    fail "README.md lacks its command '$cmd' (a line of a \`\`\`sh block starting with it)"
  [ -x "$root/$cmd" ] || fail "$cmd is not in the tree (or not executable)"
done

# --- docs/configuration.md: every key, in a table row of its own (its first cell names it).
has_row() { grep -qE -- "^\| [^|]*\`$1\`" "$config"; }
keys=$(grep -oE '\{Level::k[A-Za-z]+, "[a-z0-9-]+", ("[a-z0-9-]+"|nullptr)' "$settings" |
       grep -oE '"[a-z0-9-]+"' | tr -d '"' | sort -u)
[ "$(wc -l <<<"$keys")" -gt 30 ] || fail "too few keys read from $settings: $keys"
# The keys of the file's structure (server/config/toml_config.cc).
keys+=$'\n'"backends address name cluster sni sni-default"
# The keys of [listener.tls] and [cluster.NAME.tls] (server/config/tls_config.cc).
tls_keys=$(tr '\n' ' ' <"$tls_config" | grep -oE 'k[A-Za-z]*TlsKeys = \{[^}]*\}' | grep -oE '"[a-z0-9-]+"' | tr -d '"' | sort -u)
[ "$(wc -l <<<"$tls_keys")" -gt 10 ] || fail "too few TLS keys read from $tls_config: $tls_keys"
keys+=$'\n'"$tls_keys"
for key in $keys; do
  has_row "$key" || fail "docs/configuration.md has no table row for the key $key"
done
for table in '[cluster.NAME]' '[[listener]]' '[etcd]' '[resolvers]' '[listener.tls]' '[cluster.NAME.tls]'; do
  grep -qF -- "\`$table\`" "$config" || fail "docs/configuration.md does not describe $table"
done
options=$("$ringlb" --help | grep -oE '^  (-h \[ )?--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+')
[ "$(wc -l <<<"$options")" -gt 30 ] || fail "too few options in --help: $options"
for opt in $options; do
  # In a code span that starts with it: `--workers`, `--listen ADDR:PORT`.
  grep -qE -- "\`$opt([ =\`]|$)" "$config" || fail "docs/configuration.md lacks the option $opt"
done

# --- Links. GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens,
# "-N" on the Nth repeat. (Non-ASCII letters, which GitHub keeps, are dropped here: link only to
# ASCII headings.)
anchors() {
  awk '/^```/ { code = !code; next } !code && /^#+ / { sub(/^#+ +/, ""); print }' "$1" |
    tr 'A-Z' 'a-z' | sed -E 's/[^a-z0-9 _-]//g; s/ /-/g' |
    awk '{ n = seen[$0]++; print (n ? $0 "-" n : $0) }'
}
check_link() {  # FROM (the page) TARGET (as written) [LABEL: who links, for the message]
  local from=$1 target=$2 label=${3:-${1#"$root"/}} file fragment path
  file=${target%%#*}
  fragment=""
  [[ $target == *"#"* ]] && fragment=${target#*#}
  if [ -z "$file" ]; then
    path=$from
  else
    path="$(dirname "$from")/$file"
  fi
  if [ ! -e "$path" ]; then
    fail "$label: link to $target: no such file (or not in tests/docs/BUILD's data)"
    return
  fi
  if [ -n "$fragment" ] && [[ $path == *.md ]] && ! anchors "$path" | grep -qxF -- "$fragment"; then
    fail "$label: link to $target: ${path#"$root"/} has no heading #$fragment"
  fi
}
checked=0
for page in "${pages[@]}"; do
  # [text](target) outside code blocks and spans (a span may go on over a line end, so they are
  # dropped from the page's whole text); http(s) and mailto links are not checked.
  links=$(awk '/^```/ { code = !code; next } !code { text = text $0 "\n" }
               END { gsub(/`[^`]*`/, "", text); printf "%s", text }' "$page" |
          grep -oE '\]\([^) ]+\)' | sed -E 's/^\]\(//; s/\)$//' | grep -vE '^(https?|mailto):')
  for target in $links; do check_link "$page" "$target"; checked=$((checked + 1)); done
done
runbooks=$(grep -oE 'runbook: "[^"]+"' "$alerts" | sed -E 's/^runbook: "//; s/"$//')
[ -n "$runbooks" ] || fail "no runbook annotations in $alerts"
# Relative to the top of the tree.
for target in $runbooks; do
  check_link "$root/README.md" "$target" "metrics/alerts.yml runbook"
  checked=$((checked + 1))
done

[ "$failed" -eq 0 ] && echo "docs: ok (${#pages[@]} pages, $(wc -w <<<"$keys") keys, $(wc -w <<<"$options") options, $checked links)"
exit "$failed"
