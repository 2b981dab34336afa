#!/bin/sh
# conformance.sh <mc-transport-conformance> <plugin.so> <name>
# mc-transport-conformance on a device transport (hip, ascend) on a host
# without the device: every static check must pass, and the runtime part
# must be skipped for one of the two reasons that hold here: the plugin
# moves no CPU memory on the remote side (the tool's loopback checks need
# it), or init refused with MC_ENODEV ("not runnable on this host", exit
# 77).  Any FAIL, a crash or a sanitizer report fails the test.
set -u
tool=$1 plugin=$2 name=$3
out=$("$tool" -v "$plugin" 2>&1)
rc=$?
printf '%s\n' "$out"
for c in abi.entry abi.header abi.name abi.members abi.params; do
  printf '%s\n' "$out" | grep -q "^PASS $c:" || { echo "FAIL: static check $c did not pass"; exit 1; }
done
if printf '%s\n' "$out" | grep -q '^FAIL'; then
  echo "FAIL: a check failed"; exit 1
fi
case $rc in
  77) printf '%s\n' "$out" | grep -q "not runnable on this host: init returned MC_ENODEV" ||
        { echo "FAIL: exit 77 without MC_ENODEV"; exit 1; }
      echo "PASS: $name not runnable on this host (MC_ENODEV), static checks passed" ;;
  0) printf '%s\n' "$out" | grep -q "^SKIP runtime: plugin does not move CPU memory to CPU memory or files" ||
       { echo "FAIL: exit 0 but the runtime checks neither ran nor were skipped"; exit 1; }
     echo "PASS: $name static checks passed; the loopback checks need remote CPU memory, which $name does not serve" ;;
  *) echo "FAIL: the tool exited with status $rc"; exit 1 ;;
esac
