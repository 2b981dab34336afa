#!/bin/sh
# The plugin author's kit, as a vendor gets it.  Installs the build into a
# staging directory, builds the installed example plugin
# (share/doc/mooncake/examples/transport-plugin) with its own Makefile from
# the installed mooncake-transport.pc alone, checks what it exports, runs the
# installed mc-transport-conformance on it (it must pass, and must fail or
# skip the test-only variants built from the same files with -D flags), then
# oot_transfer with MC_PLUGIN_PATH pointing at the result (two engines
# moving data through it).
#   run.sh <meson build root> <oot_transfer binary>
# Exit 77 (skip) when make or a C compiler is missing.
set -eu
build_root=$1
transfer=$2

say() { printf 'oot: %s\n' "$*"; }

for tool in make cc pkg-config; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        say "skipped: '$tool' not found"
        exit 77
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mc-oot-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

# --no-rebuild: the test runs after the build; never run ninja from a test.
if ! meson install -C "$build_root" --no-rebuild --destdir "$tmp/inst" \
        >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log"
    say "meson install failed"
    exit 1
fi

pc=$(find "$tmp/inst" -name mooncake-transport.pc | head -n 1)
example=$(find "$tmp/inst" -path '*/share/doc/mooncake/examples/transport-plugin' -type d |
          head -n 1)
guide=$(find "$tmp/inst" -path '*/share/doc/mooncake/plugin-guide.md' | head -n 1)
conformance=$(find "$tmp/inst" -path '*/bin/mc-transport-conformance' | head -n 1)
[ -n "$pc" ] || { say "mooncake-transport.pc was not installed"; exit 1; }
[ -n "$example" ] && [ -f "$example/Makefile" ] && [ -f "$example/oot_transport.c" ] ||
    { say "the example plugin was not installed under share/doc/mooncake"; exit 1; }
[ -n "$guide" ] || { say "plugin-guide.md was not installed under share/doc/mooncake"; exit 1; }
[ -n "$conformance" ] || { say "mc-transport-conformance was not installed"; exit 1; }
say "example: ${example#"$tmp/inst"}"

# Only the installed .pc: nothing from the host's pkg-config directories;
# the sysroot rebases the .pc's absolute prefix onto the staging directory.
PKG_CONFIG_PATH=$(dirname "$pc")
PKG_CONFIG_LIBDIR=$PKG_CONFIG_PATH
PKG_CONFIG_SYSROOT_DIR="$tmp/inst"
PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1
export PKG_CONFIG_PATH PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR \
       PKG_CONFIG_ALLOW_SYSTEM_CFLAGS

cflags=$(pkg-config --cflags mooncake-transport)
say "cflags: $cflags"
incdir=
for f in $cflags; do
    case $f in -I*) [ -f "${f#-I}/mooncake/transport.h" ] && incdir=${f#-I} ;; esac
done
case $incdir in
    "$tmp/inst"/*) ;;
    *) say "cflags do not lead to the installed mooncake/transport.h"; exit 1 ;;
esac
if pkg-config --libs mooncake-transport | grep -q -- '-lmooncake'; then
    say "mooncake-transport.pc must not link libmooncake"
    exit 1
fi
plugindir=$(pkg-config --variable=plugindir mooncake-transport)
say "plugindir: $plugindir"
case $plugindir in
    */mooncake/plugins) ;;
    *) say "unexpected plugindir '$plugindir'"; exit 1 ;;
esac

# A vendor's copy of the installed example, built in place by its Makefile
# with the compiler's own defaults (no sanitizer flags from the environment).
cp -R "$example" "$tmp/src"
env -u CFLAGS -u LDFLAGS make -s -C "$tmp/src"
make -s -C "$tmp/src" install PLUGINDIR="$tmp/plugins"
test -f "$tmp/plugins/mc-transport-oot.so"

# Only the entry point is exported.
if command -v nm >/dev/null 2>&1; then
    exported=$(nm -D --defined-only "$tmp/plugins/mc-transport-oot.so" |
               awk '$2 ~ /^[TDBR]$/ {print $3}' | sort | tr '\n' ' ')
    say "exported: $exported"
    [ "$exported" = "mc_transport_plugin_v1 " ] || {
        say "unexpected exports"; exit 1; }
fi

# The installed conformance tool passes it (77 would be a skip: not here).
rc=0
make -s -C "$tmp/src" check CONFORMANCE="$conformance" >"$tmp/conf.log" 2>&1 || rc=$?
cat "$tmp/conf.log"
if [ "$rc" -ne 0 ] || ! grep -Eq '^RESULT [0-9]+ passed, 0 failed' "$tmp/conf.log"; then
    say "mc-transport-conformance did not pass the installed example (exit $rc)"
    exit 1
fi

# The two test-only variants, from the same installed source and Makefile:
# without target-side checks the hostile-initiator checks must fail it
# (exit 1); with an init that returns MC_ENODEV the tool must skip (77).
variant() { # <dir> <cflags> <wanted exit status> <required line regex>...
    dir=$1 flags=$2 want=$3
    shift 3
    mkdir "$tmp/$dir"
    env -u LDFLAGS make -s -C "$tmp/src" OUT="$tmp/$dir" CFLAGS="-O2 $flags"
    rc=0
    "$conformance" "$tmp/$dir/mc-transport-oot.so" >"$tmp/$dir.log" 2>&1 || rc=$?
    if [ "$rc" -ne "$want" ]; then
        cat "$tmp/$dir.log"
        say "$dir: mc-transport-conformance exited $rc, wanted $want"
        exit 1
    fi
    for re in "$@"; do
        grep -Eq -- "$re" "$tmp/$dir.log" || {
            cat "$tmp/$dir.log"; say "$dir: no line matches '$re'"; exit 1; }
    done
    say "$dir: exit $rc as wanted"
}
variant nocheck -DOOT_NO_TARGET_CHECK 1 '^FAIL hostile\.forged_key: ' '^FAIL hostile\.revoked: '
variant nodev -DOOT_INIT_ENODEV 77 '^SKIP runtime: not runnable on this host'

MC_PLUGIN_PATH="$tmp/plugins"
export MC_PLUGIN_PATH
unset MC_CONFIG
"$transfer"
