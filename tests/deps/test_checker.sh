#!/bin/sh
# The dependency checker on fixture trees: the clean one passes, and each
# kind of violation (an upward include, a same-layer include, a module
# missing from the table, a plugin including a core header, a backend under
# core/metadata including an engine-level header, store/ including anything
# but the public headers and rpc/rpc.h) fails with the matching message.
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
fail=0
run() { # name expected-status expected-text
  out=$("$py" "$here/check_deps.py" --root "$here/fixture/$1" \
        --layers "$here/fixture/layers.txt" --graph 2>&1)
  st=$?
  if [ "$st" -ne "$2" ]; then
    echo "FAIL $1: exit $st, expected $2"; echo "$out"; fail=1
  elif ! printf '%s\n' "$out" | grep -q -- "$3"; then
    echo "FAIL $1: output lacks '$3'"; echo "$out"; fail=1
  else
    echo "ok   $1: exit $st"
  fi
}
run good 0 'no violation'
run good 0 'L2  top           -> mid, base'
run upward 1 'core/src/base.c (base, layer 0) includes "top.h" (top, layer 2)'
run same 1 'core/src/mid_extra.c (mid, layer 1) includes "other.h" (other, layer 1)'
run unlisted 1 "module 'stray' is not in the layering table"
run plugin 1 'plugins/p/p.c includes core-internal "mid.h"'
run backend 1 'core/metadata/x/x.c includes "top.h" (top, layer 2): core/metadata/ may include core/src layers <= 1 only'
# store/** sees the public headers and rpc/rpc.h only.
run store 1 'store/master/m.c includes "mid.h" (core/src/mid.h): store/ may include only'
run store 1 'store/master/m.c includes "../../core/src/base.h" (core/src/base.h)'
run store 1 'store/master/m.c includes "rpc/rpc_internal.h" (core/rpc/rpc_internal.h)'
run store 1 'store/master/m.c includes "p_own.h" (plugins/p/p_own.h)'
if "$py" "$here/check_deps.py" --root "$here/fixture/store" --layers "$here/fixture/layers.txt" 2>&1 |
   grep -q -e '"own.h"' -e '"rpc/rpc.h"' -e 'mooncake/engine.h'; then
  echo "FAIL store: an allowed include was reported"; fail=1
fi
exit $fail
