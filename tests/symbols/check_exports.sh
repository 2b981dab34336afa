#!/bin/bash
# check_exports.sh [--macro M --node N --headers GLOB] LIB INCLUDEDIR [MAPFILE]
#
# Defaults: --macro MC_API --node MOONCAKE_0 --headers '*.h' (libmooncake).
# libmooncake-store is checked with --macro MC_STORE_API --node
# MOONCAKE_STORE_0 --headers store.h: its own macro, so neither library can
# pick up the other's functions.
#
# libmooncake exports its documented API and nothing else.  Compares the
# dynamic symbols LIB defines (nm -D --defined-only) with the functions
# declared MC_API in INCLUDEDIR/mooncake/*.h, and fails on
#   - a documented function the library does not export,
#   - any exported symbol that is not a documented function,
#   - an export outside the version node MOONCAKE_0, or no such node.
# With MAPFILE (core/libmooncake.map) the version script's global list must
# name exactly the documented functions too: the linker accepts names that
# do not exist, so a stale entry would otherwise go unnoticed.
# Exit 77 (skip) when nm is not installed.
set -u
node=MOONCAKE_0
macro=MC_API
hglob='*.h'
while [ $# -gt 0 ]; do
  case $1 in
    --macro) macro=$2; shift 2 ;;
    --node) node=$2; shift 2 ;;
    --headers) hglob=$2; shift 2 ;;
    *) break ;;
  esac
done

if [ $# -lt 2 ]; then
  echo "usage: $0 LIB INCLUDEDIR [MAPFILE]" >&2
  exit 2
fi
lib=$1 incdir=$2 map=${3:-}
command -v nm > /dev/null || { echo "SKIP: nm not found"; exit 77; }
[ -f "$lib" ] || { echo "FAIL: no library at $lib"; exit 1; }
ls "$incdir"/mooncake/$hglob > /dev/null 2>&1 ||
  { echo "FAIL: no headers under $incdir/mooncake"; exit 1; }

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# Functions declared MC_API in the public headers.  Comments and
# preprocessor lines go first (the MC_API definition itself is one), then
# each declaration "MC_API <type> mc_name(" gives its name; a declaration
# whose name cannot be read that way fails the test rather than being
# skipped.
documented() {
  local h
  for h in "$incdir"/mooncake/$hglob; do
    tr '\n' '\001' < "$h" |
      sed -e 's:/\*\([^*]\|\*\+[^*/]\)*\*\+/: :g' |
      tr '\001' '\n' |
      sed -e ':a' -e '/\\$/{N;ba' -e '}' -e '/^[[:space:]]*#/d' -e 's://.*$::' |
      tr '\n' ' ' |
      grep -oE "(^|[^A-Za-z0-9_])${macro}[^;{}(]*\\(" |
      sed -E 's/[[:space:]]*\($//; s/.*[^A-Za-z0-9_]//'
  done
}
documented > "$tmp/doc.raw"
: > "$tmp/doc"
while read -r name; do
  case $name in
    mc_*) echo "$name" >> "$tmp/doc" ;;
    *) bad "cannot read the function name of an $macro declaration (got '$name')" ;;
  esac
done < "$tmp/doc.raw"
sort -u -o "$tmp/doc" "$tmp/doc"
if [ ! -s "$tmp/doc" ]; then
  bad "no $macro declaration found under $incdir/mooncake"
  exit 1
fi

# What the library exports: "ADDR TYPE NAME@@VERSION"; the version node
# itself is an absolute symbol (type A) named after the node.
if ! nm -D --defined-only "$lib" > "$tmp/nm" 2> "$tmp/nm.err"; then
  bad "nm -D $lib: $(cat "$tmp/nm.err")"
  exit 1
fi
grep -q " A ${node}\$" "$tmp/nm" || bad "$lib defines no version node $node"
: > "$tmp/exp"
while read -r _addr type sym; do
  [ -n "${sym:-}" ] || continue
  if [ "$type" = A ]; then
    [ "$sym" = "$node" ] || bad "unexpected version node or absolute symbol '$sym'"
    continue
  fi
  name=${sym%%@*}
  ver=${sym#"$name"}
  ver=${ver#@}; ver=${ver#@}
  echo "$name" >> "$tmp/exp"
  if ! grep -qxF "$name" "$tmp/doc"; then
    bad "exported but not documented (no $macro declaration): $name ($type)"
  elif [ "$type" != T ]; then
    bad "$name is exported as type $type, not as a function (T)"
  fi
  [ "$ver" = "$node" ] || bad "$name is exported with version '${ver:-none}', not $node"
done < "$tmp/nm"
sort -u -o "$tmp/exp" "$tmp/exp"
for name in $(comm -23 "$tmp/doc" "$tmp/exp"); do
  bad "documented ($macro) but not exported: $name"
done

if [ -n "$map" ]; then
  # The names between "global:" and "local:", comments dropped.
  tr '\n' '\001' < "$map" | sed -e 's:/\*\([^*]\|\*\+[^*/]\)*\*\+/: :g' |
    tr '\001' '\n' |
    sed -n '/global:/,/local:/p' | sed -e 's/global://; s/local:.*//' |
    tr ';' '\n' | sed -e 's/[[:space:]]//g' -e '/^$/d' | sort > "$tmp/map"
  for name in $(comm -23 "$tmp/doc" "$tmp/map"); do
    bad "documented ($macro) but not listed in $(basename "$map"): $name"
  done
  for name in $(comm -13 "$tmp/doc" "$tmp/map"); do
    bad "listed in $(basename "$map") but not documented (no $macro declaration): $name"
  done
  [ -z "$(sort "$tmp/map" | uniq -d)" ] || bad "$(basename "$map") lists a name twice"
  grep -q "^${node}[[:space:]]*{" "$map" || bad "$(basename "$map") has no node $node"
fi

ndoc=$(wc -l < "$tmp/doc")
nexp=$(grep -vc ' A ' "$tmp/nm")
if [ $fail -ne 0 ]; then
  echo "FAIL: $lib exports $nexp symbols; the headers document $ndoc functions"
  exit 1
fi
echo "ok: $lib exports exactly the $ndoc documented functions, version $node"
