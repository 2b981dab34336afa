#!/bin/sh
# What the benches print, black box.
#   bench_ux_test.sh progress TRANSFER_BENCH METADATA_BENCH
#     on a pseudo-terminal (script(1), util-linux) both print progress lines
#     during a run of a few seconds; --quiet, --json and a pipe get none.
#   bench_ux_test.sh errors TRANSFER_BENCH METADATA_BENCH TMPDIR
#     an engine or backend error reaches stderr once, not twice.
#   bench_ux_test.sh repeat TRANSFER_BENCH METADATA_BENCH
#     --repeat N runs each point N times beside its baseline and prints the
#     median of the paired ratios (text and JSON); a bad count is refused.
#     --depth D keeps D batches in flight per thread, every byte checked.
set -u
mode=$1 tb=$2 mb=$3
fail() { echo "FAIL: $*"; exit 1; }
count() { grep -c "$1" "$2"; }

if [ "$mode" = progress ]; then
  command -v script > /dev/null 2>&1 || {
    echo "SKIP: script(1) from util-linux is not installed: no pseudo-terminal to test with"
    exit 77
  }
  out=$(mktemp)
  trap 'rm -f "$out"' EXIT
  run_tty() { script -qec "$1" /dev/null > "$out" 2>&1 < /dev/null; }

  base="--mode loopback --transport tcp --block-size 64K --batch-size 4"
  run_tty "'$tb' $base --duration 1.5 --progress 0.4" || { cat "$out"; fail "transfer bench on a terminal"; }
  cat "$out"
  n=$(count 'progress [0-9.]*/1.5 s: .* GB/s' "$out")
  [ "$n" -ge 2 ] || fail "transfer bench: $n progress lines in a 1.5 s run at 0.4 s"
  # Runs long enough that enabled progress would print.
  args="$base --duration 0.5 --progress 0.1"
  for quiet in --quiet --json; do
    run_tty "'$tb' $args $quiet" || { cat "$out"; fail "transfer bench $quiet"; }
    [ "$(count progress "$out")" -eq 0 ] || { cat "$out"; fail "transfer bench $quiet printed progress"; }
  done
  "$tb" $args > "$out" 2>&1 < /dev/null || { cat "$out"; fail "transfer bench without a terminal"; }
  [ "$(count progress "$out")" -eq 0 ] || { cat "$out"; fail "progress lines into a pipe"; }

  margs="--metadata p2p --peers 4 --updates 2000 --fetches 5000 --progress 0.05"
  run_tty "'$mb' $margs" || { cat "$out"; fail "metadata bench on a terminal"; }
  cat "$out"
  n=$(count 'progress: [a-z]* [0-9]*/[0-9]* after' "$out")
  [ "$n" -ge 2 ] || fail "metadata bench: $n progress lines"
  for quiet in --quiet --json; do
    run_tty "'$mb' $margs $quiet" || { cat "$out"; fail "metadata bench $quiet"; }
    [ "$(count progress "$out")" -eq 0 ] || { cat "$out"; fail "metadata bench $quiet printed progress"; }
  done
  echo OK
  exit 0
fi

if [ "$mode" = repeat ]; then
  out=$(mktemp)
  trap 'rm -f "$out"' EXIT
  base="--mode loopback --transport tcp --block-size 64K --batch-size 4 --duration 0.3 --quiet"
  "$tb" $base --baseline --repeat 3 > "$out" 2>&1 < /dev/null || { cat "$out"; fail "--repeat 3"; }
  cat "$out"
  [ "$(count '^mooncake tcp ' "$out")" -eq 3 ] || fail "--repeat 3 did not run the point 3 times"
  [ "$(count '^baseline socket ' "$out")" -eq 3 ] || fail "--repeat 3 did not run the baseline 3 times"
  # Each run of ours is followed by its baseline (pairs, not blocks).
  [ "$(grep -E '^(mooncake|baseline)' "$out" | cut -c1-8 | tr '\n' ' ')" = \
    "mooncake baseline mooncake baseline mooncake baseline " ] || fail "runs are not paired"
  grep -Eq '^median   tcp/socket read 64K x4 1 thr over 3 runs: GB/s = [0-9.]+ \([0-9.]+\.\.[0-9.]+\), cpu_s/GB = [0-9.]+' "$out" ||
    fail "no median line"
  "$tb" $base --baseline --repeat 2 --json > "$out" 2>&1 < /dev/null || { cat "$out"; fail "--repeat 2 --json"; }
  grep -q '"kind":"median".*"runs":2,"gb_per_s_ratio":[0-9.]*' "$out" || { cat "$out"; fail "no JSON median"; }
  # One run: no median line (nothing to take it over).
  "$tb" $base --baseline > "$out" 2>&1 < /dev/null || { cat "$out"; fail "one run"; }
  [ "$(count '^median' "$out")" -eq 0 ] || fail "a median of one run"
  # Two batches in flight per thread, read and write, data checked.
  "$tb" --mode loopback --transport tcp --op both --sweep --block-sizes 4K,256K \
    --thread-sweep 1,2 --batch-size 4 --depth 2 --duration 0.3 --verify --quiet > "$out" 2>&1 < /dev/null ||
    { cat "$out"; fail "--depth 2 --verify"; }
  cat "$out"
  grep -q '^# depth: 2 batches in flight per thread' "$out" || fail "--depth 2 not reported"
  [ "$(grep -c '^mooncake tcp .* ok$' "$out")" -eq 8 ] || fail "--depth 2: not every point checked ok"
  for bad in 0 9; do
    "$tb" $base --depth $bad > "$out" 2>&1 < /dev/null && fail "--depth $bad ran"
    grep -q -- "--depth: bad count '$bad'" "$out" || { cat "$out"; fail "--depth $bad: no error naming it"; }
  done
  for bad in 0 16 x; do
    "$tb" $base --repeat $bad > "$out" 2>&1 < /dev/null && fail "--repeat $bad ran"
    grep -q -- "--repeat: bad count '$bad'" "$out" || { cat "$out"; fail "--repeat $bad: no error naming it"; }
  done
  echo OK
  exit 0
fi

dir=$4
mkdir -p "$dir"
printf 'log_level: warn\nbogus: [\n' > "$dir/broken.yaml"
"$tb" --mode loopback --config "$dir/broken.yaml" --duration 1 > /dev/null 2> "$dir/err.txt" &&
  fail "a broken config ran"
cat "$dir/err.txt"
[ "$(count 'YAML syntax error' "$dir/err.txt")" -eq 1 ] || fail "the config error is not printed exactly once"
"$tb" --mode loopback --metadata etdc://x --duration 1 > /dev/null 2> "$dir/err.txt" &&
  fail "a bad metadata URL ran"
cat "$dir/err.txt"
[ "$(count "unknown scheme 'etdc'" "$dir/err.txt")" -eq 1 ] || fail "the metadata error is not printed exactly once"
"$mb" --metadata etdc://x > /dev/null 2> "$dir/err.txt" && fail "mc-metadata-bench ran with a bad URL"
cat "$dir/err.txt"
[ "$(count "unknown scheme 'etdc'" "$dir/err.txt")" -eq 1 ] || fail "mc-metadata-bench: the error is not printed exactly once"
echo OK
