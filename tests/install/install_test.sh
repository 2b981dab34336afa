#!/bin/bash
# install_test.sh BUILDDIR SRCDIR VERSION CHECKER [SANITIZE]
#
# What a packager and an application get from `meson install`:
#   - installs BUILDDIR into a temporary DESTDIR (meson install --no-rebuild);
#   - the installed libmooncake exports exactly the functions declared MC_API
#     in the *installed* headers, under version MOONCAKE_0 (CHECKER, i.e.
#     tests/symbols/check_exports.sh), with SONAME libmooncake.so.0;
#   - a program built with `pkg-config --cflags --libs mooncake` (through
#     PKG_CONFIG_SYSROOT_DIR) links against the installed library, runs with
#     it and prints VERSION from mc_version();
#   - a program calling an internal function of the library fails to link;
#   - `pkg-config mooncake-transport` gives the headers and no library, and a
#     plugin-style object links with --no-undefined from it alone; its
#     plugindir variable is where the plugins were installed;
#   - the installed tools run (--help) with only the installed library, and
#     the ones built on internal archives do not load libmooncake at all;
#   - every metadata backend module of the build is installed in
#     $libdir/mooncake/metadata, exports only its entry point, and the
#     installed library (through the installed mc-info) searches the
#     compiled-in module folder and never the build tree, and loads the
#     installed modules.
# Uses $CC (default cc); SANITIZE is meson's b_sanitize value, passed on to
# the programs built here so they link with a sanitized library.
# Runs meson from $MESON (default: meson).  Exit 77 when nm, pkg-config or
# the compiler is missing.
set -u
[ $# -ge 4 ] || { echo "usage: $0 BUILDDIR SRCDIR VERSION CHECKER [SANITIZE]" >&2; exit 2; }
builddir=$1 srcdir=$2 version=$3 checker=$4 sanitize=${5:-none}
read -r -a meson_cmd <<< "${MESON:-meson}"
read -r -a cc_cmd <<< "${CC:-cc}"
for p in nm readelf pkg-config "${cc_cmd[0]}" "${meson_cmd[0]}"; do
  command -v "$p" > /dev/null || { echo "SKIP: $p not found"; exit 77; }
done
san=()
[ "$sanitize" = none ] || [ -z "$sanitize" ] || san=("-fsanitize=$sanitize")

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
fail=0
bad() { echo "FAIL: $*"; fail=1; }

if ! "${meson_cmd[@]}" install -C "$builddir" --destdir "$dest" --no-rebuild > "$tmp/install.log" 2>&1; then
  cat "$tmp/install.log"
  echo "FAIL: meson install --destdir failed"
  exit 1
fi

one() {  # one PATTERN: the single installed path matching PATTERN
  local found
  found=$(find "$dest" -path "$1" | sort)
  if [ "$(printf '%s\n' "$found" | grep -c .)" -ne 1 ]; then
    echo "FAIL: expected one installed file matching $1, found: ${found:-none}" >&2
    return 1
  fi
  printf '%s\n' "$found"
}
lib=$(one '*/libmooncake.so.*.*.*') || exit 1
libdir=$(dirname "$lib")
pcdir=$(dirname "$(one '*/pkgconfig/mooncake.pc')") || exit 1
[ -f "$pcdir/mooncake-transport.pc" ] || bad "mooncake-transport.pc is not next to mooncake.pc"
engine_h=$(one '*/include/mooncake/engine.h') || exit 1
incdir=$(dirname "$(dirname "$engine_h")")
bindir=$(dirname "$(one '*/bin/mc-info')") || exit 1
echo "installed: $lib"

# Every public header is installed.
for h in "$srcdir"/core/include/mooncake/*.h; do
  cmp -s "$h" "$incdir/mooncake/$(basename "$h")" ||
    bad "public header $(basename "$h") is not installed as is"
done
# The development symlink and the SONAME.
[ "$(readlink -f "$libdir/libmooncake.so")" = "$(readlink -f "$lib")" ] ||
  bad "libmooncake.so does not point at $(basename "$lib")"
readelf -d "$lib" | grep -q 'SONAME.*\[libmooncake\.so\.0\]' ||
  bad "SONAME is not libmooncake.so.0: $(readelf -d "$lib" | grep SONAME)"

# The exported set, against the installed headers.
bash "$checker" "$lib" "$incdir" || fail=1

# pkg-config, with the DESTDIR as sysroot: -I and -L point into it.
export PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PKG_CONFIG_SYSROOT_DIR="$dest"
pcver=$(pkg-config --modversion mooncake) || bad "pkg-config mooncake: not found"
[ "${pcver:-}" = "$version" ] || bad "mooncake.pc says version '${pcver:-}', expected $version"
read -r -a app_flags <<< "$(pkg-config --cflags --libs mooncake)"
echo "pkg-config --cflags --libs mooncake: ${app_flags[*]}"
case " ${app_flags[*]} " in
  *" -L$libdir "*) ;;
  *) bad "pkg-config --libs mooncake does not point at $libdir" ;;
esac
if "${cc_cmd[@]}" -std=c11 -Wall -Wextra -Werror "${san[@]}" -o "$tmp/consumer" \
     "$srcdir/tests/install/consumer.c" "${app_flags[@]}" > "$tmp/cc.log" 2>&1; then
  ldd_out=$(LD_LIBRARY_PATH="$libdir" ldd "$tmp/consumer" 2>&1)
  printf '%s\n' "$ldd_out" | grep -q "libmooncake\.so\.0 => $libdir/" ||
    bad "the consumer does not load the installed library: $ldd_out"
  out=$(LD_LIBRARY_PATH="$libdir" "$tmp/consumer" "$version" 2>&1)
  [ $? -eq 0 ] && [ "$out" = "$version" ] ||
    bad "consumer against the installed library: $out"
else
  cat "$tmp/cc.log"
  bad "a program built with pkg-config mooncake does not compile and link"
fi

# Internal symbols are in the library but cannot be linked against.
internals=(mc_config_parse_size mc_log_enabled mc_metadata_open)
for sym in "${internals[@]}"; do
  if ! nm "$lib" 2> /dev/null | grep -q " [a-zA-Z] $sym\$"; then
    echo "note: $sym is not in the library's symbol table (stripped?); link check only"
  fi
  if "${cc_cmd[@]}" -std=c11 "${san[@]}" -DINTERNAL_SYM="$sym" -o "$tmp/internal_user" \
       "$srcdir/tests/install/internal_user.c" "${app_flags[@]}" > "$tmp/cc.log" 2>&1; then
    bad "a program calling the internal $sym links against the installed library"
  elif ! grep -q "undefined reference to .$sym" "$tmp/cc.log"; then
    cat "$tmp/cc.log"
    bad "linking a call to $sym failed for another reason than an undefined reference"
  fi
done

# The plugin author's kit: headers only, no library.
plugin_libs=$(pkg-config --libs mooncake-transport) || bad "pkg-config mooncake-transport: not found"
case " $plugin_libs " in
  *mooncake*) bad "pkg-config --libs mooncake-transport links a library: $plugin_libs" ;;
esac
read -r -a plugin_flags <<< "$(pkg-config --cflags mooncake-transport)"
if "${cc_cmd[@]}" -std=c11 -Wall -Wextra -Werror -fPIC -shared -Wl,--no-undefined \
     -o "$tmp/plugin_stub.so" "$srcdir/tests/install/plugin_stub.c" "${plugin_flags[@]}" \
     > "$tmp/cc.log" 2>&1; then
  nm -D --undefined-only "$tmp/plugin_stub.so" | grep -q ' mc_' &&
    bad "a plugin built from mooncake-transport needs libmooncake symbols"
else
  cat "$tmp/cc.log"
  bad "a plugin-style object does not build from pkg-config mooncake-transport alone"
fi
plugindir=$(pkg-config --variable=plugindir mooncake-transport)
plugindir=${plugindir#"$dest"}
# A build with every transport disabled installs none (and mc-info, which
# needs one, is not run below).
have_plugins=$(ls "$builddir"/plugins/mc-transport-*.so 2> /dev/null | head -1)
if [ -n "$have_plugins" ]; then
  [ -d "$dest$plugindir" ] && ls "$dest$plugindir"/mc-transport-*.so > /dev/null 2>&1 ||
    bad "plugindir '$plugindir' (mooncake-transport.pc) holds no installed plugin"
else
  echo "no transport plugin in this build: plugindir and mc-info not checked"
fi

# The installed tools start with the installed library alone; those built
# on internal archives do not load libmooncake at all.
for t in mc-info mc-topology mooncake-metadata-server mc-metadata-bench; do
  [ -x "$bindir/$t" ] || continue
  deps=$(LD_LIBRARY_PATH="$libdir" ldd "$bindir/$t" 2>&1)
  printf '%s\n' "$deps" | grep -q 'not found' && bad "$t: missing library: $deps"
  case $t in
    mc-info)
      printf '%s\n' "$deps" | grep -q "libmooncake\.so\.0 => $libdir/" ||
        bad "$t does not use the installed libmooncake" ;;
    *)
      printf '%s\n' "$deps" | grep -q libmooncake &&
        bad "$t links an internal archive and must not load libmooncake too" ;;
  esac
  LD_LIBRARY_PATH="$libdir" "$bindir/$t" --help > "$tmp/help" 2>&1 ||
    bad "$t --help: exit $? ($(head -1 "$tmp/help"))"
  grep -qi usage "$tmp/help" || bad "$t --help prints no usage"
done

# Metadata backend modules (etcd, http): one file each, in
# $libdir/mooncake/metadata.
mddir=$libdir/mooncake/metadata
for m in "$builddir"/core/metadata/mc-metadata-*.so; do
  [ -e "$m" ] || continue
  im=$mddir/$(basename "$m")
  if [ ! -f "$im" ]; then
    bad "metadata module $(basename "$m") is not installed in $mddir"
    continue
  fi
  syms=$(nm -D --defined-only "$im" 2> /dev/null | awk '{print $3}' | grep -v '^$' | sort -u | tr '\n' ' ')
  [ "$syms" = "mc_metadata_backend_v1 " ] ||
    bad "$(basename "$m") exports '$syms', expected mc_metadata_backend_v1 only"
done
if [ -x "$bindir/mc-info" ] && [ -n "$have_plugins" ]; then
  plugdir=$(dirname "$(find "$dest" -name 'mc-transport-*.so' | head -1)")
  info=$(unset MC_METADATA_MODULE_PATH; LD_LIBRARY_PATH="$libdir" MC_PLUGIN_PATH="$plugdir" \
         "$bindir/mc-info" 2>&1)
  sp=$(printf '%s\n' "$info" | grep 'module search path')
  case $sp in
    *"$builddir"*) bad "the installed library searches the build tree for modules: $sp" ;;
  esac
  [ "$sp" = "  module search path (first match wins): ${mddir#"$dest"}" ] ||
    bad "the installed library's module search path is not ${mddir#"$dest"}: $sp"
  # The installed modules load (pointed at in the DESTDIR, as the prefix
  # is not the real one here).
  info=$(LD_LIBRARY_PATH="$libdir" MC_PLUGIN_PATH="$plugdir" MC_METADATA_MODULE_PATH="$mddir" \
         "$bindir/mc-info" 2>&1)
  for m in "$mddir"/mc-metadata-*.so; do
    [ -e "$m" ] || continue
    n=$(basename "$m" .so); n=${n#mc-metadata-}
    printf '%s\n' "$info" | grep -Eq "AVAILABLE +$n +$m\$" ||
      bad "the installed $n module does not load: $(printf '%s\n' "$info" | sed -n '/^metadata backends/,$p')"
  done
fi

[ $fail -eq 0 ] && echo "ok: installed library, headers, pkg-config files, tools and metadata modules"
exit $fail
