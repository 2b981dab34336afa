#!/bin/sh
# mc-master-bench runs end to end (its own master, 2 client processes) in
# a short run: one JSON object per phase, every phase did work, no error.
# Not a timed benchmark: no figure is checked.  $1: mc-master-bench.
set -u
out=$("$1" --duration 0.3 --json) || { echo "FAIL: exit status $?"; echo "$out"; exit 1; }
echo "$out"
for op in '"op":"ping"' '"op":"put_start_end","batch":128' '"op":"get_replica_list","batch":128' \
          '"op":"put_start_end","batch":1' '"op":"get_replica_list","batch":1'; do
  line=$(echo "$out" | grep -F "$op") || { echo "FAIL: no $op line"; exit 1; }
  echo "$line" | grep -q '"errors":0,' || { echo "FAIL: errors in $op"; exit 1; }
  echo "$line" | grep -q '"item_ops_per_s":0,' && { echo "FAIL: no work in $op"; exit 1; }
done
if "$1" --batch 0 >/dev/null 2>&1; then echo "FAIL: --batch 0 accepted"; exit 1; fi
echo "bench smoke: ok"
