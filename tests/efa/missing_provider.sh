#!/bin/sh
# missing_provider.sh <mc-transport-conformance> <mc-transport-efa.so>
# A provider libfabric does not have: init must fail with MC_ENODEV (the
# tool's exit 77, "not runnable on this host") and the plugin's log line
# must name the provider and what fi_getinfo lists.
set -u
out=$(MC_CONFORMANCE_PARAMS=provider=no_such_prov "$1" -v "$2" 2>&1)
rc=$?
printf '%s\n' "$out"
[ $rc -eq 77 ] || { echo "FAIL: exit $rc, expected 77 (MC_ENODEV from init)"; exit 1; }
printf '%s\n' "$out" | grep -q "MC_ENODEV" || { echo "FAIL: not MC_ENODEV"; exit 1; }
printf '%s\n' "$out" | grep -q "provider 'no_such_prov'.*fi_info lists RDM providers: ." ||
  { echo "FAIL: the log line does not name the provider and the listed ones"; exit 1; }
echo "PASS: missing provider refused with MC_ENODEV, named with the providers listed"
