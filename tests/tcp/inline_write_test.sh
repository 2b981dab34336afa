#!/bin/sh
# Writes sent by the submitting thread (inline_write_max large) and writes
# handed to the io threads (inline_write_max 0), end to end through the
# engine, every byte read back and checked by mc-transfer-bench --verify.
#   inline_write_test.sh MC_TRANSFER_BENCH
set -u
tb=$1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for max in 0 64K 1G; do
  MC_TRANSPORT_TCP_INLINE_WRITE_MAX=$max "$tb" --mode loopback --transport tcp --op write \
    --sweep --block-sizes 4K,64K,1M --thread-sweep 1,2 --batch-size 16 --duration 0.3 \
    --verify --quiet > "$out" 2>&1 < /dev/null || { cat "$out"; echo "FAIL: inline_write_max=$max"; exit 1; }
  cat "$out"
  n=$(grep -c '^mooncake tcp *write .* ok$' "$out")
  [ "$n" -eq 6 ] || { echo "FAIL: inline_write_max=$max: $n of 6 points checked ok"; exit 1; }
done
# A bad value is refused, naming the variable.
MC_TRANSPORT_TCP_INLINE_WRITE_MAX=lots "$tb" --mode loopback --duration 0.2 > "$out" 2>&1 < /dev/null &&
  { cat "$out"; echo "FAIL: a bad inline_write_max ran"; exit 1; }
grep -q 'MC_TRANSPORT_TCP_INLINE_WRITE_MAX' "$out" || { cat "$out"; echo "FAIL: the error does not name the variable"; exit 1; }
echo OK
