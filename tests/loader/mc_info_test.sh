#!/bin/sh
# mc-info over the fixture plugins plus a shadowing copy of oot: every file
# is listed with the right state and reason, in text and JSON.
#   mc_info_test.sh <mc-info binary> <tests/plugins build dir> <build plugin dir>
# The build's own plugins (<build>/plugins, searched after MC_PLUGIN_PATH
# because mc-info runs from the build tree) are listed too.
set -eu
mcinfo=$1
plugdir=$2
buildplug=$3
nbuild=$(ls "$buildplug" | grep -c '^mc-transport-.*\.so$' || true)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mc-info-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
fail() { printf 'FAIL: %s\n' "$*"; exit 1; }

mkdir "$tmp/first"
cp "$plugdir/mc-transport-oot.so" "$tmp/first/"
MC_PLUGIN_PATH="$tmp/first:$plugdir:/nonexistent/dir"
export MC_PLUGIN_PATH
unset MC_CONFIG

"$mcinfo" >"$tmp/out.txt" 2>"$tmp/err.txt" || {
    cat "$tmp/out.txt" "$tmp/err.txt"; fail "mc-info exited $?"; }
cat "$tmp/out.txt"
first=$(cd "$tmp/first" && pwd -P)
real=$(cd "$plugdir" && pwd -P)
expect() { grep -q -- "$1" "$tmp/out.txt" || fail "text output lacks: $1"; }
expect "^mooncake [0-9]"
expect "^  $tmp/first\$"
expect "^  /nonexistent/dir\$"
expect "LOADED    oot        $first/mc-transport-oot.so"
expect "version 1.0.0, ABI 1\.[0-9]"
expect "caps: READ WRITE INTRA_NODE MT_SUBMIT OWN_THREADS"
expect "rails (1): memcpy0"
expect "SHADOWED  oot        $real/mc-transport-oot.so"
expect "shadowed by $first/mc-transport-oot.so"
expect "REFUSED   badabi     $real/mc-transport-badabi.so"
expect "ABI major 99, this core supports 1"
expect "entry symbol mc_transport_plugin_v1 not found"
expect "name 'other' does not match file name 'misname'"
expect "REFUSED   garbage"
expect "REFUSED   failinit"
expect "init failed"
[ "$(sed '/^metadata backends:/,$d' "$tmp/out.txt" | grep -c '^  [A-Z]')" -eq $((9 + nbuild)) ] ||
    fail "expected $((9 + nbuild)) plugin files listed"

"$mcinfo" --json >"$tmp/out.json" 2>/dev/null || fail "mc-info --json failed"
if command -v python3 >/dev/null 2>&1; then
    python3 - "$tmp/out.json" "$first" "$tmp/first" "$nbuild" <<'PY' || fail "JSON check"
import json, sys
d = json.load(open(sys.argv[1]))
by = {(p["name"], p["state"]): p for p in d["plugins"]}
oot = by[("oot", "LOADED")]
assert oot["path"] == sys.argv[2] + "/mc-transport-oot.so", oot
assert oot["rails"][0]["name"] == "memcpy0" and oot["abi"].startswith("1.")
assert "OWN_THREADS" in oot["caps"]
assert ("oot", "SHADOWED") in by
assert "ABI major 99" in by[("badabi", "REFUSED")]["reason"]
assert d["search_path"][0] == sys.argv[3], d["search_path"]
assert len(d["plugins"]) == 9 + int(sys.argv[4])
PY
fi

"$mcinfo" --bogus >/dev/null 2>&1 && fail "unknown option accepted"
echo "mc-info: ok"
