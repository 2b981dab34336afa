#!/bin/sh
# softverbs_env.sh NNICS[ib] CMD ARGS... - runs CMD with a fresh libsoftverbs
# configuration (NNICS fake NICs, RoCE v2 or with "ib" InfiniBand link
# layer (LID routed), a fabric file in a temporary directory,
# SOFTVERBS_CONFIG set), then removes the directory.  CMD may start with
# VAR=value words (passed to env).  For running a tool unchanged over the
# software device (mc-transport-conformance).
set -u
n=${1%ib}
link=eth
[ "$n" != "$1" ] && link=ib
shift
dir=$(mktemp -d "${TMPDIR:-/tmp}/mc-softverbs.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT INT TERM
{
  echo "fabric $dir/fabric"
  i=0
  while [ "$i" -lt "$n" ]; do
    echo "nic sv$i numa=$((i / 2)) pci=0000:$(printf %02x $((0x3b + i))):00.0 link=$link"
    i=$((i + 1))
  done
} > "$dir/sv.conf"
SOFTVERBS_CONFIG="$dir/sv.conf"
export SOFTVERBS_CONFIG
env "$@"
