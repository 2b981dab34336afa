#!/bin/sh
# perf_compare.sh BUILD PROVIDER [DOMAIN] - the efa plugin against the
# provider's raw RMA, like for like, one point after the other in one run
# (plugins/efa/README.md, "Performance").  Not a test: a measurement; run
# it alone on the machine (under `flock /tmp/mc-bench.lock` where builds
# share it).
#
# For each block size and op: efa-rma-bw with as many ops in flight as the
# bench's batch, each on its own block of the buffers (-n B -r B), then
# mc-transfer-bench --transport efa with that batch (one request per
# block), then the ratio plugin/raw of GB/s and of CPU s/GB (both
# processes).  Batch 16, 4 at 16M (--max-batch-bytes 64M), 1 thread.
# REPEAT rounds of all points, interleaved (a shared host drifts): the
# table shows the medians, their ratio, and the range of the per-round
# ratios.
#   SIZES="64K 1M 16M" OPS="read write" DUR=2 REPEAT=1 EXTRA_YAML=""
#   (lines added under transports.efa)
#   DEPTH=D: the bench keeps D batches of B/D requests in flight
#   (--depth D), so like the raw tool it refills while earlier ops
#   complete instead of draining each batch; B stays the ops in flight
#   at most, and the blocks used.
#   BASE_PLUGINS=DIR: also run the bench with the efa plugin in DIR (an
#   earlier build, "before"), right after the current one, per point.
set -eu
build=$1 prov=$2 dom=${3:-}
SIZES=${SIZES:-"64K 1M 16M"}
OPS=${OPS:-"read write"}
DUR=${DUR:-2}
REPEAT=${REPEAT:-1}
DEPTH=${DEPTH:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
  echo "transports:"
  echo "  efa:"
  echo "    provider: \"$prov\""
  [ -n "$dom" ] && echo "    domain: $dom"
  [ -n "${EXTRA_YAML:-}" ] && printf '%s\n' "$EXTRA_YAML"
} >"$tmp/efa.yaml"
# The base plugin gets the same file less EXTRA_YAML (its keys may differ).
{
  echo "transports:"
  echo "  efa:"
  echo "    provider: \"$prov\""
  [ -n "$dom" ] && echo "    domain: $dom"
} >"$tmp/base.yaml"
bytes() {
  case $1 in
  *K) echo $((${1%K} * 1024)) ;;
  *M) echo $((${1%M} * 1048576)) ;;
  *) echo "$1" ;;
  esac
}
case $DEPTH in 1 | 2 | 4) ;; *) echo "DEPTH must be 1, 2 or 4" >&2; exit 2 ;; esac
echo "# $(date -u +%FT%TZ) provider=$prov ${dom:+domain=$dom} repeats=$REPEAT depth=$DEPTH load: $(cut -d' ' -f1-3 /proc/loadavg)"
rep=1
while [ $rep -le "$REPEAT" ]; do
  for size in $SIZES; do
    b=16
    [ "$(bytes "$size")" -ge $((16 * 1048576)) ] && b=4
    for op in $OPS; do
      if [ -n "$dom" ]; then
        raw=$("$build/tests/efa/efa-rma-bw" -p "$prov" -d "$dom" -s "$size" -n $b -r $b -t "$DUR" -o "$op")
      else
        raw=$("$build/tests/efa/efa-rma-bw" -p "$prov" -s "$size" -n $b -r $b -t "$DUR" -o "$op")
      fi
      echo "$raw" >>"$tmp/log"
      pl=$(MC_PLUGIN_PATH="$build/plugins" "$build/examples/mc-transfer-bench" --transport efa \
        --config "$tmp/efa.yaml" --block-size "$size" --batch-size $((b / DEPTH)) \
        --depth "$DEPTH" --op "$op" --duration "$DUR" --threads 1 --quiet | tail -1)
      echo "$pl" >>"$tmp/log"
      bl="- - - - - - - 0 - - - - 0"
      if [ -n "${BASE_PLUGINS:-}" ]; then
        bl=$(MC_PLUGIN_PATH="$BASE_PLUGINS" "$build/examples/mc-transfer-bench" --transport efa \
          --config "$tmp/base.yaml" --block-size "$size" --batch-size $b --op "$op" \
          --duration "$DUR" --threads 1 --quiet | tail -1)
        echo "$bl (base)" >>"$tmp/log"
      fi
      rgb=$(echo "$raw" | sed -n 's/.*GB\/s=\([0-9.]*\).*/\1/p')
      rcpu=$(echo "$raw" | sed -n 's/.*initiator=\([0-9.]*\) target=\([0-9.]*\).*/\1 \2/p' |
        awk '{printf "%.3f", $1 + $2}')
      # mooncake efa <op> <block> <batch> <thr> GB/s req/s p50 p99 cpu% tgtcpu% cpu_s/GB check
      echo "$size $op $b $rgb $rcpu $(echo "$pl" | awk '{print $7, $13}') $(echo "$bl" | awk '{print $7, $13}')" >>"$tmp/data"
    done
  done
  rep=$((rep + 1))
done
# Medians over the repeats of each point (raw and plugin separately), and
# the plugin/raw ratios of those medians; min..max of the ratio per run.
printf '%-12s %-5s %5s %3s %8s %8s %6s %11s %8s %8s %6s %8s %6s %8s\n' provider op size B raw_GB/s \
  efa_GB/s ratio ratio_range raw_cpu efa_cpu cpu_r base_GB/s b_rat base_cpu
for size in $SIZES; do
  for op in $OPS; do
    grep "^$size $op " "$tmp/data" | awk -v p="$prov" '
      function med(a, n,   i, j, t) {
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
          t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
      { n++; s = $1; o = $2; b = $3; rg[n] = $4; rc[n] = $5; pg[n] = $6; pc[n] = $7; bg[n] = $8; bc[n] = $9
        r = $4 > 0 ? $6 / $4 : 0; if (n == 1 || r < lo) lo = r; if (n == 1 || r > hi) hi = r }
      END { if (!n) exit
        mrg = med(rg, n); mpg = med(pg, n); mrc = med(rc, n); mpc = med(pc, n)
        mbg = med(bg, n); mbc = med(bc, n)
        printf "%-12s %-5s %5s %3d %8.3f %8.3f %6.2f %5.2f..%-5.2f %8.3f %8.3f %6.2f %8.3f %6.2f %8.3f\n",
          p, o, s, b, mrg, mpg, (mrg > 0 ? mpg / mrg : 0), lo, hi, mrc, mpc,
          (mrc > 0 ? mpc / mrc : 0), mbg, (mrg > 0 ? mbg / mrg : 0), mbc }'
  done
done
echo "# raw lines and bench lines:"
sed 's/^/# /' "$tmp/log"
