#!/bin/sh
# tests/device/run.sh - the nvlink transport checked for real on a host with
# an NVIDIA GPU, in one script that ends within 8 minutes:
#   1. installs what a minimal build needs (apt-get on Debian/Ubuntu, only
#      if something is missing; no CUDA toolkit: the plugin and the check
#      program dlopen libcuda.so.1 from the driver),
#   2. configures and builds a minimal tree (every optional part off but
#      nvlink) in $MC_DEVICE_BUILD (default: <source>/build-device),
#   3. runs mc-nvlink-check: two processes on GPU 0, cuda:0 -> cuda:0
#      through CUDA IPC with the data checked, then the nvlink bench beside
#      cuMemcpyDtoD in the same run,
#   4. prints ONE summary line (the last line): the nvlink/DtoD ratio for
#      1 MiB+ blocks against the 0.9x target.
# Usage:  sh tests/device/run.sh          (from anywhere in the tree)
# Exit: 0 data checked (the ratio is reported either way), 1 a failure,
# 77 no NVIDIA driver or device here.
#
# MC_DEVICE_FAKE=1 runs the same steps over the fake driver of tests/cuda
# (tests/device/meson.build does, in CI): no install, no configure; the
# existing build $MC_DEVICE_BUILD is used and must have the nvlink plugin.
set -u
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${MC_DEVICE_BUILD:-$src/build-device}
fake=${MC_DEVICE_FAKE:-0}
say() { printf 'device-check: %s\n' "$*"; }
fail() { say "FAIL: $*"; echo "SUMMARY nvlink device check: FAILED ($*)"; exit 1; }
skip() { say "SKIP: $*"; echo "SUMMARY nvlink device check: skipped ($*)"; exit 77; }
start=$(date +%s)

if [ "$fake" = 1 ]; then
  lib=$build/tests/cuda/fakecuda/libcuda.so.1
  [ -f "$build/plugins/mc-transport-nvlink.so" ] ||
    skip "no nvlink plugin in $build (the nvlink part is off)"
  [ -f "$lib" ] || skip "no fake driver at $lib"
  args="--buffer 64M --seconds 0.2 --blocks 64K,1M,4M,16M"
else
  lib=libcuda.so.1
  if ! (ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 ') &&
     ! ls /usr/lib/*/libcuda.so.1 /usr/lib64/libcuda.so.1 >/dev/null 2>&1; then
    skip "no libcuda.so.1: this host has no NVIDIA driver"
  fi
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L | head -n 4
  # 1. What a minimal build needs.
  need=""
  command -v cc >/dev/null 2>&1 || need="$need gcc libc6-dev"
  command -v meson >/dev/null 2>&1 || need="$need meson"
  command -v ninja >/dev/null 2>&1 || need="$need ninja-build"
  command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
  pkg-config --exists yaml-0.1 2>/dev/null || need="$need libyaml-dev"
  pkg-config --exists jansson 2>/dev/null || need="$need libjansson-dev"
  if [ -n "$need" ]; then
    command -v apt-get >/dev/null 2>&1 ||
      fail "missing:$need, and no apt-get to install them"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    say "installing:$need"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
      $sudo env DEBIAN_FRONTEND=noninteractive timeout 240 apt-get install -y -qq \
        --no-install-recommends $need >/dev/null || fail "apt-get install$need"
  fi
  # 2. A minimal build: nvlink on, everything optional off.
  if [ ! -f "$build/build.ninja" ]; then
    timeout 120 meson setup "$build" "$src" --buildtype=release \
      -Dauto_features=disabled -Dtcp=disabled -Dnvlink=enabled -Dtests=true \
      >"$build.setup.log" 2>&1 || { tail -n 20 "$build.setup.log"; fail "meson setup"; }
  fi
  timeout 240 ninja -C "$build" plugins/mc-transport-nvlink.so \
    tests/device/mc-nvlink-check >"$build.ninja.log" 2>&1 ||
    { tail -n 20 "$build.ninja.log"; fail "build"; }
  args="--buffer 2G --seconds 2 --blocks 64K,1M,4M,16M,64M"
fi

# 3. The check and the bench, in one run.
out=$(mktemp)
trap 'rm -f "$out"' EXIT
MC_PLUGIN_PATH=$build/plugins MC_LOG_LEVEL=${MC_LOG_LEVEL:-warn} \
  timeout 240 "$build/tests/device/mc-nvlink-check" --libcuda "$lib" $args >"$out" 2>&1
rc=$?
grep -v '^SUMMARY' "$out"
[ $rc = 77 ] && skip "$(grep '^SKIP' "$out" | head -n 1)"
[ $rc = 0 ] || fail "mc-nvlink-check exited $rc"
summary=$(grep '^SUMMARY' "$out" | tail -n 1)
[ -n "$summary" ] || fail "mc-nvlink-check printed no summary"
# 4. One line.
mode="GPU"
[ "$fake" = 1 ] && mode="fake driver (ratio meaningless: both sides are memcpy)"
echo "$summary; $mode; $(($(date +%s) - start)) s"
