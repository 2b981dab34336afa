#!/bin/sh
# mc-topology, black box.  usage: mc_topology_test.sh MODE MC_TOPOLOGY XML OUTDIR
#   MODE basic: discovery of this host, bad paths and options (any build)
#   MODE xml:   hwloc XML and synthetic input (builds with hwloc); without
#               hwloc it prints why and exits 77 (skip)
set -u
mode=$1 exe=$2 xml=$3 out=$4
fail() { echo "FAIL: $*"; exit 1; }

if [ "$mode" = basic ]; then
  "$exe" > "$out/mc-topology-host.yaml" || fail "discovery of this host failed"
  grep -q '^topology:' "$out/mc-topology-host.yaml" || fail "no topology: section"

  # A missing file is "no such file", naming the path (not "invalid argument").
  if "$exe" --xml /nonexistent.xml > /dev/null 2> "$out/err.txt"; then
    fail "--xml /nonexistent.xml succeeded"
  fi
  cat "$out/err.txt"
  grep -q 'no such file' "$out/err.txt" || fail "missing XML not reported as 'no such file'"
  grep -qF '/nonexistent.xml' "$out/err.txt" || fail "missing XML path not named"
  grep -q 'invalid argument' "$out/err.txt" && fail "missing XML reported as invalid argument"

  "$exe" --sysfs /nonexistent-sysfs > /dev/null 2> "$out/err.txt" && fail "--sysfs of a missing dir succeeded"
  grep -q 'no such file.*' "$out/err.txt" || fail "missing sysfs root not reported"

  "$exe" --bogus > /dev/null 2> "$out/err.txt"
  [ $? -eq 2 ] || fail "--bogus does not exit 2"
  grep -q "unknown option" "$out/err.txt" || fail "--bogus not reported as unknown option"
  echo "OK"
  exit 0
fi

if [ "$5" != 1 ]; then
  echo "SKIP: mc-topology was built without hwloc (-Dtopology=disabled or hwloc >= 2.0 not found): no XML or synthetic input"
  exit 77
fi
"$exe" --xml "$xml" > "$out/mc-topology-out.yaml" || fail "--xml $xml"
grep -q '^topology:' "$out/mc-topology-out.yaml" || fail "no topology: section"
grep -qF '"cuda:7": {preferred: ["mlx5_7"]' "$out/mc-topology-out.yaml" || fail "cuda:7 not next to mlx5_7"
"$exe" --synthetic "pack:2 numa:1 pu:2" | grep -qF '"cpu:1"' || fail "--synthetic lacks cpu:1"
echo "OK"
