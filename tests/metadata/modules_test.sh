#!/bin/sh
# modules_test.sh LIBMOONCAKE TCP_PLUGIN BENCH MC_INFO BAD_MODULE_DIR MODULE_DIR
#
# The metadata backends etcd and http are loadable modules (issue 11):
#   1. libmooncake's NEEDED entries name none of gRPC, protobuf-c, libcurl,
#      libmicrohttpd (nor abseil, which gRPC brings);
#   2. an application using p2p runs with the modules removed: a copy of
#      libmooncake and the tcp plugin in a temporary prefix without any
#      module (a copy outside the build tree does not search it) moves and
#      verifies data in two processes, and never maps gRPC or libcurl;
#   3. etcd:// (and http://) there fails with the clear message naming the
#      module file and the search path;
#   4. the modules of the build (MODULE_DIR) export their entry point only
#      and do not link libmooncake;
#   5. modules with a wrong ABI major or a name that is not their file's
#      (and one whose vendor library is missing: dlerror()) are refused
#      with the reason, shown by mc-info, and an engine asking for their
#      scheme fails with that reason.
set -u
[ $# -eq 6 ] || { echo "usage: $0 LIBMOONCAKE TCP_PLUGIN BENCH MC_INFO BAD_MODULE_DIR MODULE_DIR" >&2; exit 2; }
lib=$1 tcp=$2 bench=$3 info=$4 baddir=$5 moddir=$6
command -v readelf > /dev/null || { echo "SKIP: readelf not found"; exit 77; }
fail=0
bad() { echo "FAIL: $*"; fail=1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
unset MC_METADATA_MODULE_PATH MC_METADATA MC_CONFIG

# 1. NEEDED entries of the core.
needed=$(readelf -d "$lib" | grep NEEDED)
echo "$needed"
if printf '%s\n' "$needed" | grep -Ei 'grpc|gpr|protobuf|curl|microhttpd|absl'; then
  bad "libmooncake.so needs an optional backend's library (above)"
fi

# 2. p2p with no module anywhere.
mkdir -p "$tmp/lib" "$tmp/plugins"
cp "$lib" "$tmp/lib/" || exit 1
ln -s "$(basename "$lib")" "$tmp/lib/libmooncake.so.0" 2> /dev/null
cp "$tcp" "$tmp/plugins/" || exit 1
export LD_LIBRARY_PATH="$tmp/lib" MC_PLUGIN_PATH="$tmp/plugins"
mods=$("$info" 2>&1 | sed -n '/^metadata backends:/,$p')
echo "$mods"
printf '%s\n' "$mods" | grep -q 'no module found' ||
  bad "mc-info run on the module-less copy still finds modules"
printf '%s\n' "$mods" | grep -q "$(dirname "$(dirname "$lib")")" &&
  bad "a libmooncake outside its build tree searches the build tree for modules"
LD_DEBUG=files "$bench" --mode loopback --transport tcp --metadata p2p --op write \
  --block-size 64K --batch-size 2 --threads 1 --duration 1 --verify --quiet \
  > "$tmp/out" 2> "$tmp/err"
rc=$?
[ $rc -eq 0 ] || { cat "$tmp/out"; grep -v 'file=\|^ *[0-9]*:\s*$' "$tmp/err" | tail -20; bad "p2p transfer without modules: exit $rc"; }
grep -q "file=$tmp/lib/libmooncake" "$tmp/err" || grep -q "$tmp/lib/libmooncake" "$tmp/err" ||
  bad "the bench did not load the module-less copy of libmooncake"
if grep -E 'file=[^ ]*(grpc|curl|protobuf)' "$tmp/err" | head -3 | grep .; then
  bad "a p2p application mapped an optional backend's library"
fi

# 3. etcd:// and http:// without their modules.
for u in etcd://127.0.0.1:1 http://127.0.0.1:1/md; do
  s=${u%%:*}
  out=$("$bench" --mode loopback --transport tcp --metadata "$u" --duration 1 --quiet 2>&1)
  rc=$?
  echo "$out" | head -3
  [ $rc -ne 0 ] || bad "$u without its module: exit 0"
  printf '%s\n' "$out" | grep -qF "needs the $s backend module (mc-metadata-$s.so), not found in" ||
    bad "$u without its module: no clear message"
done

# 4. The build's modules: the entry point only, no libmooncake.
for m in "$moddir"/mc-metadata-*.so; do
  [ -e "$m" ] || continue
  readelf -d "$m" | grep NEEDED | grep -q libmooncake && bad "$(basename "$m") links libmooncake"
  syms=$(readelf --dyn-syms -W "$m" | awk '$5 == "GLOBAL" && $7 != "UND" {print $8}' | sort -u | tr '\n' ' ')
  [ "$syms" = "mc_metadata_backend_v1 " ] ||
    bad "$(basename "$m") exports '$syms', expected mc_metadata_backend_v1 only"
  echo "module $(basename "$m"): exports $syms"
done

# 5. Refused modules.
export MC_METADATA_MODULE_PATH="$baddir"
out=$("$info" 2>&1)
printf '%s\n' "$out" | sed -n '/^metadata backends:/,$p'
printf '%s\n' "$out" | grep -Eq "REFUSED +badabi +$baddir/mc-metadata-badabi.so" ||
  bad "mc-info does not list mc-metadata-badabi.so as refused"
printf '%s\n' "$out" | grep -q 'ABI major 99, this core supports 1' ||
  bad "mc-info does not give the ABI refusal reason"
printf '%s\n' "$out" | grep -q "name 'other' does not match file name 'badname'" ||
  bad "mc-info does not give the name mismatch reason"
# A module whose vendor library is missing: dlerror() is the reason.
mkdir -p "$tmp/vendor"
cp "$baddir/mc-metadata-needsvendor.so" "$tmp/vendor/" || exit 1
out=$(MC_METADATA_MODULE_PATH="$tmp/vendor" "$info" 2>&1)
printf '%s\n' "$out" | sed -n '/^metadata backends:/,$p'
printf '%s\n' "$out" | grep -Eq "REFUSED +needsvendor" &&
  printf '%s\n' "$out" | grep -q "cannot be loaded: .*libmc_md_vendor_stub.so.*cannot open shared object file" ||
  bad "a module with a missing library is not refused with dlerror()"

# An engine asking for etcd:// when the etcd module found is a bad one
# (here the badabi module copied under the etcd module's name).
mkdir -p "$tmp/badetcd"
cp "$baddir/mc-metadata-badabi.so" "$tmp/badetcd/mc-metadata-etcd.so" || exit 1
export MC_METADATA_MODULE_PATH="$tmp/badetcd"
out=$("$bench" --mode loopback --transport tcp --metadata etcd://127.0.0.1:1 --duration 1 --quiet 2>&1)
rc=$?
echo "$out" | head -3
[ $rc -ne 0 ] || bad "etcd:// opened with a bad module"
printf '%s\n' "$out" | grep -q "mc-metadata-etcd.so was refused: ABI major 99, this core supports 1" ||
  bad "etcd:// with a bad module does not fail with the refusal reason"

[ $fail -eq 0 ] && echo "ok: core without backend libraries, p2p without modules, clear errors"
exit $fail
