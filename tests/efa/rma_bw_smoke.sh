#!/bin/sh
# rma_bw_smoke.sh BIN PROVIDER [DOMAIN] - one short run of efa-rma-bw (the
# raw libfabric RMA baseline) per op with tiny sizes: it must exit 0 and
# print a result line with a positive rate.  77 (with the tool's reason)
# where the provider is not offered.
bin=$1 prov=$2 dom=$3
for op in write read; do
  if [ -n "$dom" ]; then
    out=$("$bin" -p "$prov" -d "$dom" -s 4K -n 4 -t 0.2 -o $op 2>&1); rc=$?
  else
    out=$("$bin" -p "$prov" -s 4K -n 4 -t 0.2 -o $op 2>&1); rc=$?
  fi
  echo "$out"
  if [ $rc -eq 77 ]; then exit 77; fi
  if [ $rc -ne 0 ]; then echo "FAIL: efa-rma-bw -o $op exited $rc"; exit 1; fi
  # Some operations must have completed; how fast is the bench's business
  # (beside other suites a 0.2 s run may show GB/s=0.000 yet have moved data).
  echo "$out" | grep -Eq "^rma-bw [^ ]+ $op size=4096 inflight=4 GB/s=[0-9]+\.[0-9]+ ops=[1-9]" ||
    { echo "FAIL: no result line for $op"; exit 1; }
done
echo "PASS"
