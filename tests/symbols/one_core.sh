#!/bin/bash
# one_core.sh BUILDDIR LIB
#
# Every program of the build holds one copy of the core: it either loads
# libmooncake.so (LIB) and uses the exported API only, or links an internal
# archive of the core (core/meson.build: mooncake_*_internal_dep) and does
# not load libmooncake.so too, which would give the process two copies of
# the core's state.  And no transport plugin loads libmooncake at all.
# Checks every ELF executable and shared object under BUILDDIR (meson's
# per-target *.p folders aside).  Exit 77 when nm or readelf is missing.
set -u
[ $# -eq 2 ] || { echo "usage: $0 BUILDDIR LIB" >&2; exit 2; }
builddir=$1 lib=$2
for p in nm readelf; do
  command -v $p > /dev/null || { echo "SKIP: $p not found"; exit 77; }
done
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# The core's internal functions: local (t) mc_* functions in the library's
# symbol table.
nm "$lib" 2> /dev/null | awk '$2 == "t" && $3 ~ /^mc_/ { print $3 }' | sort -u > "$tmp/internal"
if [ ! -s "$tmp/internal" ]; then
  echo "SKIP: $lib has no symbol table (stripped), internal functions unknown"
  exit 77
fi

fail=0 nprog=0
while IFS= read -r -d '' f; do
  head -c 4 "$f" 2> /dev/null | grep -q 'ELF' || continue
  [ "$(readlink -f "$f")" = "$(readlink -f "$lib")" ] && continue
  needed=$(readelf -d "$f" 2> /dev/null | grep NEEDED | grep -o '\[libmooncake\.so[^]]*\]')
  case $(basename "$f") in
    mc-transport-*.so)
      [ -z "$needed" ] || { echo "FAIL: plugin $f loads $needed"; fail=1; }
      continue ;;
  esac
  [ -n "$needed" ] || continue
  nprog=$((nprog + 1))
  nm --defined-only "$f" 2> /dev/null | awk '$2 ~ /^[Tt]$/ { print $3 }' | sort -u |
    comm -12 - "$tmp/internal" > "$tmp/dup"
  if [ -s "$tmp/dup" ]; then
    echo "FAIL: $f loads libmooncake.so and holds its own copy of core functions:" \
      "$(head -5 "$tmp/dup" | tr '\n' ' ')"
    fail=1
  fi
done < <(find "$builddir" -name '*.p' -prune -o -type f -perm -u+x -print0)

[ $nprog -gt 0 ] || { echo "FAIL: no program of $builddir loads libmooncake.so"; fail=1; }
[ $fail -eq 0 ] && echo "ok: $nprog programs load libmooncake.so without a second copy of the core; no plugin loads it"
exit $fail
