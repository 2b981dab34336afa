#!/bin/sh
# info.sh <mc-info> <build plugin dir> <plugin name> <expected reason>
# mc-info lists the plugin (REFUSED here: init failed, no such device) with
# its keys, and its one log line gives the reason; an engine with
# `transports: auto` (what mc-info builds without a config) still starts
# with the plugin present (mc-info exits 0 listing tcp LOADED).
set -u
mcinfo=$1 plugdir=$2 name=$3 reason=$4
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mc-info-$name-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
unset MC_CONFIG MC_TRANSPORTS || true
fail() { cat "$tmp/out" "$tmp/err"; echo "FAIL: $*"; exit 1; }
MC_PLUGIN_PATH=$plugdir MC_LOG_LEVEL=warn "$mcinfo" --transports auto >"$tmp/out" 2>"$tmp/err" ||
  fail "mc-info --transports auto exited non-zero"
grep -q "^  REFUSED   $name *$plugdir/mc-transport-$name.so" "$tmp/out" ||
  grep -q "^  LOADED    $name *$plugdir/mc-transport-$name.so" "$tmp/out" ||
  fail "mc-info does not list $name"
if grep -q "^  REFUSED   $name" "$tmp/out"; then
  grep -A2 "^  REFUSED   $name" "$tmp/out" | grep -q "init failed: no such device" ||
    fail "$name refused for another reason than MC_ENODEV"
  n=$(grep -c "warn  $name: " "$tmp/err")
  [ "$n" -eq 1 ] || fail "$name logged $n lines, expected one"
  grep "warn  $name: " "$tmp/err" | grep -q -- "$reason" || fail "$name's line lacks: $reason"
  grep "warn  $name: " "$tmp/err"
fi
grep -q "^  LOADED    tcp" "$tmp/out" || fail "tcp not loaded: the engine did not start"
echo "PASS: mc-info lists $name; an auto engine starts beside it"
