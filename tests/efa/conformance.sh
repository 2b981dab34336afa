#!/bin/sh
# conformance.sh <mc-transport-conformance> <mc-transport-efa.so> <tcp|shm> <params> [shm_repro]
# Runs the conformance tool on the efa plugin over one libfabric provider
# and fails on any failed check.  The one exception: with shm, the
# standalone reproducer shm_repro (tests/efa/shm_repro.c, libfabric only)
# runs first, and only the checks that trip over a provider fault it
# reproduced on this host are skipped, each printed with the reason
# (MC_CONFORMANCE_SKIP); where the provider behaves, everything runs.
#   refused      -> hostile.revoked hostile.stale_key (a refused RMA never
#                   completes and wedges the pair of endpoints)
#   closed-peer  -> peer.gone (an endpoint closing under another endpoint
#                   of the same process crashes the latter's CQ read)
#   ep-growth    -> lifecycle.leaks lifecycle.fini_releases (each endpoint
#                   leaves heap bytes in the provider; the plugin's own
#                   leaks are LSan's to find in the sanitizer build)
# Exit 77 (skip) when the tool reports the provider not runnable here.
# Exit status other than 0, 1 (checks failed) or 77: a crash or a
# sanitizer report, always a failure.
set -u
tool=$1 plugin=$2 prov=$3 params=$4 repro=${5:-}
LSAN_OPTIONS="suppressions=$(dirname "$0")/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS
skip='' names_all=''
# libfabric's shm provider names its regions /dev/shm/<pid>:<n>:<m>; a
# process that crashes (the reproducer's closed-peer case does) leaves
# them, and a later process given that pid cannot open an endpoint
# (EBUSY).  Remove those of processes that are gone, before and after.
reap_shm() {
  for f in /dev/shm/[0-9]*:[0-9]*:[0-9]*; do
    [ -e "$f" ] || continue
    p=${f#/dev/shm/}; p=${p%%:*}
    kill -0 "$p" 2>/dev/null || rm -f "$f"
  done
}
if [ "$prov" = shm ]; then reap_shm; trap reap_shm EXIT; fi
if [ -n "$repro" ]; then
  for mode in refused closed-peer ep-growth; do
    rout=$("$repro" $mode 2>&1)
    rrc=$?
    printf '%s\n' "$rout" | sed "s/^/shm_repro $mode: /"
    case $rrc in
      0) ;;
      77) echo "SKIP: provider $prov not offered here"; exit 77 ;;
      3)
        case $mode in
          refused) names=hostile.revoked,hostile.stale_key ;;
          closed-peer) names=peer.gone ;;
          ep-growth) names=lifecycle.leaks,lifecycle.fini_releases ;;
        esac
        bug=$(printf '%s\n' "$rout" | sed -n 's/^PROVIDER-BUG: //p' | tr ';\n' ',' | sed 's/,$//')
        skip="$skip${skip:+;}$names:libfabric bug reproduced here by tests/efa/shm_repro.c $mode: $bug"
        names_all="${names_all:-}${names_all:+,}$names" ;;
      *) echo "shm_repro $mode failed to run (status $rrc)"; exit 1 ;;
    esac
  done
fi
if [ -n "$skip" ]; then
  MC_CONFORMANCE_SKIP=$skip
  export MC_CONFORMANCE_SKIP
  echo "PROVIDER-BUG: skipping $names_all (reproduced above without this plugin)"
fi
out=$(MC_CONFORMANCE_PARAMS=$params "$tool" "$plugin" 2>&1)
rc=$?
printf '%s\n' "$out"
[ $rc -eq 77 ] && { echo "SKIP: provider $prov not offered here"; exit 77; }
[ $rc -eq 0 ] || [ $rc -eq 1 ] || { echo "the tool exited with status $rc"; exit 1; }
bad=0
for f in $(printf '%s\n' "$out" | sed -n 's/^FAIL \([a-z._]*\):.*/\1/p'); do
  echo "FAIL: $f"
  bad=1
done
printf '%s\n' "$out" | grep -q '^RESULT' || { echo "no RESULT line (rc $rc)"; exit 1; }
exit $bad
