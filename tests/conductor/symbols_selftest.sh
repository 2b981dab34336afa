#!/bin/bash
# symbols_selftest.sh CHECKER LIB INCLUDEDIR MAPFILE
#
# The export check of libmooncake-conductor (check_exports.sh with
# MC_EXPORT_MACRO=MC_CONDUCTOR_API, node MOONCAKE_CONDUCTOR_0, header
# conductor.h) must catch drift, not only pass: doctored copies of the
# header and the version script must fail, naming the function.
set -u
[ $# -eq 4 ] || { echo "usage: $0 CHECKER LIB INCLUDEDIR MAPFILE" >&2; exit 2; }
checker=$1 lib=$2 incdir=$3 map=$4
command -v nm > /dev/null || { echo "SKIP: nm not found"; exit 77; }
export MC_EXPORT_MACRO=MC_CONDUCTOR_API MC_EXPORT_NODE=MOONCAKE_CONDUCTOR_0 \
       MC_EXPORT_HEADERS=conductor.h
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0
expect() { # name want pattern dir
  bash "$checker" "$lib" "$4/inc" "$4/lib.map" > "$tmp/out" 2>&1
  rc=$?
  [ $rc -eq 77 ] && { echo "SKIP: checker skipped"; exit 77; }
  if [ "$2" -eq 0 ] && [ $rc -ne 0 ]; then
    echo "FAIL: $1: expected a pass:"; cat "$tmp/out"; fail=1
  elif [ "$2" -ne 0 ] && [ $rc -ne 1 ]; then
    echo "FAIL: $1: expected rc=1, got $rc:"; cat "$tmp/out"; fail=1
  elif ! grep -qF -- "$3" "$tmp/out"; then
    echo "FAIL: $1: output lacks '$3':"; cat "$tmp/out"; fail=1
  else
    echo "ok: $1"
  fi
}
fresh() {
  rm -rf "$1"; mkdir -p "$1/inc/mooncake"
  cp "$incdir"/mooncake/*.h "$1/inc/mooncake/"
  cp "$map" "$1/lib.map"
}
d=$tmp/c0; fresh "$d"
expect "unchanged inputs pass" 0 "ok:" "$d"
d=$tmp/c1; fresh "$d"
printf '\nMC_CONDUCTOR_API int mc_cond_selftest_missing(void);\n' >> "$d/inc/mooncake/conductor.h"
expect "documented, not exported" 1 \
  "documented (MC_CONDUCTOR_API) but not exported: mc_cond_selftest_missing" "$d"
d=$tmp/c2; fresh "$d"
sed -i 's/^MC_CONDUCTOR_API \(uint32_t mc_cond_match(\)/\1/' "$d/inc/mooncake/conductor.h"
grep -q '^uint32_t mc_cond_match(' "$d/inc/mooncake/conductor.h" ||
  { echo "FAIL: cannot find mc_cond_match's declaration to doctor"; exit 1; }
expect "exported, not documented" 1 \
  "exported but not documented (no MC_CONDUCTOR_API declaration): mc_cond_match" "$d"
d=$tmp/c3; fresh "$d"
sed -i '/^[[:space:]]*mc_cond_schedule;/d' "$d/lib.map"
expect "documented, not in the version script" 1 \
  "documented (MC_CONDUCTOR_API) but not listed in lib.map: mc_cond_schedule" "$d"
exit $fail
