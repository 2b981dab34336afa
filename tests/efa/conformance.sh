#!/bin/sh
# conformance.sh <mc-transport-conformance> <mc-transport-efa.so> <tcp|shm> <params>
# Runs the conformance tool on the efa plugin over one libfabric provider.
# Fails on any failed check, except the checks a provider bug (not ours)
# makes fail, each named with its standalone reproducer and printed as
# PROVIDER-BUG, never passed silently (see the list below).
# Exit 77 (skip) when the tool reports the provider not runnable here.
# Exit status other than 0, 1 (checks failed) or 77: a crash or a
# sanitizer report, always a failure.
set -u
tool=$1 plugin=$2 prov=$3 params=$4
LSAN_OPTIONS="suppressions=$(dirname "$0")/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS
out=$(MC_CONFORMANCE_PARAMS=$params "$tool" "$plugin" 2>&1)
rc=$?
printf '%s\n' "$out"
[ $rc -eq 77 ] && { echo "SKIP: provider $prov not offered here"; exit 77; }
[ $rc -eq 0 ] || [ $rc -eq 1 ] || { echo "the tool exited with status $rc"; exit 1; }
known=''
bad=0
for f in $(printf '%s\n' "$out" | sed -n 's/^FAIL \([a-z._]*\):.*/\1/p'); do
  case " $known " in
    *" $f "*) echo "PROVIDER-BUG: $f (see the header of $0)" ;;
    *) echo "UNEXPECTED FAIL: $f"; bad=1 ;;
  esac
done
printf '%s\n' "$out" | grep -q '^RESULT' || { echo "no RESULT line (rc $rc)"; exit 1; }
exit $bad
