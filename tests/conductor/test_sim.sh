#!/bin/sh
# test_sim.sh SIM TRACE EXAMPLES: mc-conductor-sim on a 300-request slice of
# the conversation trace (tests/conductor/data): the same seed gives the
# same JSON byte for byte, a different seed moves the random policy, the
# JSON carries the keys the issue names with sane values, cache-aware
# scheduling reuses more than random, and bad input is refused with a
# message (file and line for the config).
sim=$1 trace=$2 ex=$3
cfg=$ex/cluster.yaml
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }
run() { "$sim" --trace "$trace" --config "$cfg" --json "$@"; }

for p in random load-balance cache-local cache-global; do
  for a in baseline early predicted; do
    run --policy $p --admission $a --seed 7 --speed 8 > "$tmp/1" || no "$p/$a exit $?"
    run --policy $p --admission $a --seed 7 --speed 8 > "$tmp/2" || no "$p/$a exit $?"
    cmp -s "$tmp/1" "$tmp/2" || no "$p/$a: two runs with seed 7 differ"
  done
done
run --policy random --admission early --seed 1 > "$tmp/s1"
run --policy random --admission early --seed 2 > "$tmp/s2"
cmp -s "$tmp/s1" "$tmp/s2" && no "random policy: seeds 1 and 2 gave the same result"

for k in policy admission requests rejected slo_attained ttft_mean_s ttft_p99_s tbt_p90_s \
         prefix_hit_ratio; do
  grep -q "\"$k\": " "$tmp/s1" || no "JSON lacks \"$k\": $(cat "$tmp/s1")"
done
grep -q '"requests": 300,' "$tmp/s1" || no "not 300 requests: $(cat "$tmp/s1")"
grep -q '"policy": "random", "admission": "early"' "$tmp/s1" || no "policy/admission: $(cat "$tmp/s1")"

# Reuse: cache-global must hit more of the prefix than random on this slice.
hit() { sed -n 's/.*"prefix_hit_ratio": \([0-9.]*\).*/\1/p' "$1"; }
run --policy cache-global --admission early --seed 1 > "$tmp/g"
awk -v r="$(hit "$tmp/s1")" -v g="$(hit "$tmp/g")" 'BEGIN { exit !(g > r && g > 0.05) }' ||
  no "prefix hit: cache-global $(hit "$tmp/g") not above random $(hit "$tmp/s1")"

# Load curves as CSV.
run --policy cache-global --admission predicted --csv "$tmp/c.csv" > /dev/null || no "--csv run failed"
head -1 "$tmp/c.csv" | grep -q '^t_s,prefill_load,decode_load' || no "CSV header: $(head -1 "$tmp/c.csv")"
[ "$(wc -l < "$tmp/c.csv")" -gt 3 ] || no "CSV has too few rows"

# Bad input.
out=$("$sim" --trace "$trace" --config "$cfg" --policy nope --admission early 2>&1)
[ $? -eq 2 ] && echo "$out" | grep -q "unknown policy 'nope'" || no "bad policy: $out"
out=$("$sim" --trace "$trace" --config "$cfg" --policy random 2>&1)
[ $? -eq 2 ] || no "missing --admission accepted: $out"
printf 'profile: llama3-70b.yaml\nprefill: 4\ndecode: lots\n' > "$tmp/bad.yaml"
cp "$ex/llama3-70b.yaml" "$tmp/"
out=$("$sim" --trace "$trace" --config "$tmp/bad.yaml" --policy random --admission early 2>&1)
[ $? -eq 1 ] && echo "$out" | grep -q "bad.yaml:3: decode: 'lots'" || no "bad config: $out"
out=$(run --policy random --admission early --set cache_blocks=x 2>&1)
[ $? -eq 2 ] && echo "$out" | grep -q "cache_blocks" || no "bad --set: $out"
printf '{"timestamp": 0, "input_length": 10}\n' > "$tmp/bad.jsonl"
out=$("$sim" --trace "$tmp/bad.jsonl" --config "$cfg" --policy random --admission early 2>&1)
[ $? -eq 1 ] && echo "$out" | grep -q "bad.jsonl:1:" || no "bad trace: $out"

[ $fail -eq 0 ] && echo "ok: mc-conductor-sim deterministic, keys present, bad input refused"
exit $fail
