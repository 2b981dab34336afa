#!/bin/sh
# engine_stripe.sh BENCH SOFTVERBS SV_STAT flat|numa - the engine's rail
# choice over mc-transport-rdma, observed in the soft NICs' byte counters:
# mc-transfer-bench (two engines, p2p metadata, the core's control channel)
# writes for a second over 4 soft NICs, then sv_stat reads the initiator's
# per-NIC bytes.
#   flat: all 4 NICs on NUMA node 0 -> all 4 carry traffic, within 10%.
#   numa: NICs on nodes 0,0,1,1 and the bench's buffers on node 0 (the
#         topology's preferred tier) -> exactly sv0 and sv1, within 10%.
set -u
bench=$1 lib=$2 stat=$3 kind=$4
dir=$(mktemp -d "${TMPDIR:-/tmp}/mc-softverbs.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT INT TERM
{
  echo "fabric $dir/fabric"
  for i in 0 1 2 3; do
    node=0
    [ "$kind" = numa ] && node=$((i / 2))
    echo "nic sv$i numa=$node pci=0000:$(printf %02x $((0x3b + i))):00.0"
  done
} > "$dir/sv.conf"
SOFTVERBS_CONFIG=$dir/sv.conf MC_TRANSPORTS=rdma MC_TRANSPORT_RDMA_LIBRARY=$lib \
  "$bench" --transport rdma --op write --duration 1 --verify --quiet || exit 1
if [ "$kind" = flat ]; then
  "$stat" "$dir/fabric" --balance 10 --min-nics 4
else
  "$stat" "$dir/fabric" --balance 10 --min-nics 2 --max-nics 2
fi
