#!/usr/bin/env bash
# tests/user/newcomer.sh - follows README.md word for word, as a newcomer on
# a fresh machine would, and fails on the first step that does not work.
#
#   bash tests/user/newcomer.sh [REPO_ROOT]
#
# 1. The packages the README's two set-up commands install are the ones
#    .ci/run installs (so the README cannot drift from what CI proves).
# 2. In a fresh copy of the tree (tracked and untracked, not ignored, files),
#    with HOME set to an empty temporary folder and no MC_* variable, it runs
#    the first set-up command from `meson setup` on (the packages are already
#    installed; apt is not run here): build, then the tcp loopback bench.
# 3. It runs the README's "Install it and try the installed files" block
#    as written: install to $HOME/mooncake, mc-info, the installed example
#    config through mc-info and the bench, the installed example plugin built
#    with its Makefile from pkg-config alone, its conformance run, and
#    mc-info finding it.  Then it checks what those steps must have shown.
# Exit 0 when every step worked, 1 otherwise; the last line says which.
set -uo pipefail

root=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
readme=$root/README.md
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mc-newcomer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fail() {
  printf 'newcomer: FAIL: %s\n' "$*"
  exit 1
}
step() { printf '\n== newcomer: %s\n' "$*"; }

# The n-th (1-based) ```sh block after the line matching $2 (or of the
# whole file when $2 is empty), without its fences.
sh_block() {
  awk -v n="$1" -v after="$2" '
    after != "" && !seen { if (index($0, after) == 1) seen = 1; next }
    /^```sh$/ { k++; if (k == n) { on = 1; next } }
    /^```$/ { if (on) exit; next }
    on { print }' "$readme"
}

# ---- 1. package lists ------------------------------------------------------
step "README set-up commands install what .ci/run installs"
ci_pkgs=$(sed -n '/^REQUIRED=(/,/)/p; /^OPTIONAL=(/,/)/p' "$root/.ci/run" |
  sed 's/^[A-Z]*=(//; s/)//' | tr -s ' \n' '\n\n' | grep -v '^$' | sort -u)
[ -n "$ci_pkgs" ] || fail "could not read REQUIRED/OPTIONAL from .ci/run"
for n in 1 2; do
  cmd=$(sh_block "$n" "")
  [ -n "$cmd" ] || fail "README has no set-up command $n"
  pkgs=$(printf '%s\n' "$cmd" | sed -n 's/.*apt-get install -y \([^&]*\)&&.*/\1/p' |
    tr -s ' ' '\n' | grep -v '^$' | sort -u)
  [ -n "$pkgs" ] || fail "set-up command $n does not install packages: $cmd"
  if [ "$pkgs" != "$ci_pkgs" ]; then
    diff <(printf '%s\n' "$ci_pkgs") <(printf '%s\n' "$pkgs")
    fail "set-up command $n installs another package list than .ci/run (diff: .ci/run < > README)"
  fi
done
second=$(sh_block 2 "")
case $second in
*"&& bash .ci/run") ;;
*) fail "the second set-up command does not end with 'bash .ci/run': $second" ;;
esac

# ---- 2. a fresh copy, a fresh HOME, no MC_* --------------------------------
step "copying the tree into $tmp/src"
mkdir -p "$tmp/src" "$tmp/home"
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$root" && git ls-files -co --exclude-standard -z |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -xf - -C "$tmp/src" || fail "copying the tree"
else
  (cd "$root" && tar --exclude='./build*' -cf - .) | tar -xf - -C "$tmp/src" ||
    fail "copying the tree"
fi
for v in $(compgen -e | grep '^MC_' || true); do unset "$v"; done
export HOME=$tmp/home

first=$(sh_block 1 "")
run_first=${first#*&& meson setup}
[ "$run_first" != "$first" ] || fail "set-up command 1 has no 'meson setup': $first"
run_first="meson setup$run_first"
step "set-up command 1 from 'meson setup' on: $run_first"
(cd "$tmp/src" && bash -euo pipefail -c "$run_first") >"$tmp/first.log" 2>&1
rc=$?
tail -n 25 "$tmp/first.log"
[ $rc = 0 ] || fail "set-up command 1 exited $rc"
grep -Eq 'GB/s|ratio' "$tmp/first.log" || fail "the bench printed no result"

# ---- 3. the install-and-try block ------------------------------------------
block=$(sh_block 1 "## Install it and try the installed files")
[ -n "$block" ] || fail "README has no 'Install it and try the installed files' block"
step "README install-and-try block, as written"
printf '%s\n' "$block" | sed 's/^/  | /'
printf '%s\n' "$block" >"$tmp/try.sh"
(cd "$tmp/src" && bash -e -o pipefail "$tmp/try.sh") >"$tmp/try.log" 2>&1
rc=$?
cat "$tmp/try.log"
[ $rc = 0 ] || fail "the install-and-try block exited $rc"

step "checking what the block must have shown"
prefix=$HOME/mooncake
[ -f "$prefix/lib/libmooncake.so" ] || fail "no $prefix/lib/libmooncake.so"
for p in tcp shm; do
  so=$prefix/lib/mooncake/plugins/mc-transport-$p.so
  if [ "$p" = shm ] && [ ! -e "$so" ]; then
    echo "shm is not built on this machine (optional); not expected"
    continue
  fi
  grep -Eq "LOADED +$p +$so" "$tmp/try.log" ||
    fail "mc-info did not show $p LOADED from $so"
done
if grep -q "$tmp/src/build/plugins" "$tmp/try.log"; then
  fail "the installed mc-info searched the build tree"
fi
[ -f "$HOME/transport-plugin/mc-transport-oot.so" ] || fail "make built no plugin"
grep -Eq '^PASS ' "$tmp/try.log" || fail "make check printed no PASS line"
if grep -Eq '^FAIL ' "$tmp/try.log"; then fail "make check printed a FAIL line"; fi
[ -f "$HOME/mc-plugins/mc-transport-oot.so" ] || fail "make install put nothing in \$HOME/mc-plugins"
grep -Eq "LOADED +oot +$HOME/mc-plugins/mc-transport-oot.so" "$tmp/try.log" ||
  fail "mc-info did not load the example plugin from \$HOME/mc-plugins"
echo "newcomer: PASS"
