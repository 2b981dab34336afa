#!/bin/sh
# Out-of-tree plugin test.  Installs mooncake's development files (headers,
# .pc) into a staging directory, builds tests/oot/plugin with its own
# Makefile against them -- exactly as a vendor would against a packaged
# mooncake -- and runs oot_transfer with MC_PLUGIN_PATH pointing at the
# result.
#   run.sh <meson build root> <plugin source dir> <oot_transfer binary>
set -eu
build_root=$1
plugin_src=$2
transfer=$3

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mc-oot-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

say() { printf 'oot: %s\n' "$*"; }

# --no-rebuild: the test runs after the build; never run ninja from a test.
if ! meson install -C "$build_root" --no-rebuild --tags devel \
        --destdir "$tmp/inst" >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log"
    say "meson install failed"
    exit 1
fi

pc=$(find "$tmp/inst" -name mooncake-transport.pc | head -n 1)
if [ -z "$pc" ]; then
    say "mooncake-transport.pc was not installed"
    exit 1
fi
# Only the staged tree: nothing from the host's pkg-config dirs, and the
# sysroot rebases the .pc's absolute prefix onto the staging directory.
PKG_CONFIG_LIBDIR=$(dirname "$pc")
PKG_CONFIG_PATH=
PKG_CONFIG_SYSROOT_DIR="$tmp/inst"
PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1
export PKG_CONFIG_LIBDIR PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR \
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

# Build from a clean directory so nothing from the source tree leaks in, and
# with the compiler's own defaults (no sanitizer flags from the environment).
mkdir "$tmp/build"
env -u CFLAGS -u LDFLAGS make -s -f "$plugin_src/Makefile" OUT="$tmp/build"
make -s -f "$plugin_src/Makefile" OUT="$tmp/build" install \
    PLUGINDIR="$tmp/plugins"
test -f "$tmp/plugins/mc-transport-oot.so"

# Only the entry point is exported.
if command -v nm >/dev/null 2>&1; then
    exported=$(nm -D --defined-only "$tmp/plugins/mc-transport-oot.so" |
               awk '$2 ~ /^[TDBR]$/ {print $3}' | sort | tr '\n' ' ')
    say "exported: $exported"
    [ "$exported" = "mc_transport_plugin_v1 " ] || {
        say "unexpected exports"; exit 1; }
fi

MC_PLUGIN_PATH="$tmp/plugins"
export MC_PLUGIN_PATH
unset MC_CONFIG
"$transfer"
