#!/bin/bash
# selftest.sh CHECKER LIB INCLUDEDIR MAPFILE
#
# The export check must catch drift in every direction, not only pass on a
# good library.  Runs CHECKER (check_exports.sh) on the real library with
# doctored copies of the headers and of the version script and expects each
# to fail, naming the function at fault:
#   1. a new MC_API declaration the library does not export,
#   2. an exported function whose MC_API declaration is gone (undocumented),
#   3. a documented function missing from the version script,
#   4. a version script entry that no header declares,
#   5. an MC_API declaration the checker cannot read a name from.
# The unchanged inputs must pass first.
set -u
[ $# -eq 4 ] || { echo "usage: $0 CHECKER LIB INCLUDEDIR MAPFILE" >&2; exit 2; }
checker=$1 lib=$2 incdir=$3 map=$4
command -v nm > /dev/null || { echo "SKIP: nm not found"; exit 77; }

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0

# expect NAME WANT(0|1) PATTERN INCDIR MAP
expect() {
  local name=$1 want=$2 pattern=$3 inc=$4 m=$5 rc
  bash "$checker" "$lib" "$inc" "$m" > "$tmp/out" 2>&1
  rc=$?
  if [ $rc -eq 77 ]; then
    echo "SKIP: $name: checker skipped"; exit 77
  fi
  if [ "$want" -eq 0 ] && [ $rc -ne 0 ]; then
    echo "FAIL: $name: expected a pass, got rc=$rc:"; sed 's/^/  /' "$tmp/out"; fail=1
  elif [ "$want" -ne 0 ] && [ $rc -ne 1 ]; then
    echo "FAIL: $name: expected rc=1, got rc=$rc:"; sed 's/^/  /' "$tmp/out"; fail=1
  elif [ -n "$pattern" ] && ! grep -qF -- "$pattern" "$tmp/out"; then
    echo "FAIL: $name: output lacks '$pattern':"; sed 's/^/  /' "$tmp/out"; fail=1
  else
    echo "ok: $name"
  fi
}

# fresh_copy DIR: a copy of the headers and of the map under DIR.
fresh_copy() {
  rm -rf "$1"; mkdir -p "$1/inc/mooncake"
  cp "$incdir"/mooncake/*.h "$1/inc/mooncake/"
  cp "$map" "$1/lib.map"
}

expect "unchanged inputs pass" 0 "ok:" "$incdir" "$map"

# A documented function must be exported (and listed in the script).
d=$tmp/c1; fresh_copy "$d"
printf '\n/* Added. */\nMC_API int\nmc_selftest_missing(const char *s);\n' \
  >> "$d/inc/mooncake/engine.h"
expect "documented, not exported" 1 "documented (MC_API) but not exported: mc_selftest_missing" \
  "$d/inc" "$d/lib.map"

# An exported function must be documented: drop MC_API from mc_version.
d=$tmp/c2; fresh_copy "$d"
sed -i 's/^MC_API \(const char \*mc_version(void);\)/\1/' "$d/inc/mooncake/engine.h"
grep -q '^const char \*mc_version(void);' "$d/inc/mooncake/engine.h" ||
  { echo "FAIL: selftest cannot find mc_version's declaration to doctor"; exit 1; }
expect "exported, not documented" 1 "exported but not documented (no MC_API declaration): mc_version" \
  "$d/inc" "$d/lib.map"

# The version script must list every documented function...
d=$tmp/c3; fresh_copy "$d"
sed -i '/^[[:space:]]*mc_batch_wait;/d' "$d/lib.map"
expect "documented, not in the version script" 1 \
  "documented (MC_API) but not listed in lib.map: mc_batch_wait" "$d/inc" "$d/lib.map"

# ... and nothing else (the linker would ignore a stale name).
d=$tmp/c4; fresh_copy "$d"
sed -i 's/^\([[:space:]]*\)mc_version;/\1mc_version;\n\1mc_selftest_stale;/' "$d/lib.map"
expect "stale version script entry" 1 \
  "listed in lib.map but not documented (no MC_API declaration): mc_selftest_stale" \
  "$d/inc" "$d/lib.map"

# A declaration the parser cannot read is an error, not a silent skip.
d=$tmp/c5; fresh_copy "$d"
printf '\nMC_API void (*mc_selftest_fnptr(void))(int);\n' >> "$d/inc/mooncake/engine.h"
expect "unreadable MC_API declaration" 1 "cannot read the function name" \
  "$d/inc" "$d/lib.map"

exit $fail
