#!/bin/sh
# Runs the conformance tool on a plugin that must not pass, and checks how:
#   expect.sh <exit status> <tool> <plugin.so> [required output line regex]...
# The exit status must be exactly the given one and every regex must match a
# line of the output (grep -E).  The output is shown either way.
set -u
want=$1 tool=$2 plugin=$3
shift 3
out=$(mktemp "${TMPDIR:-/tmp}/mc-conf-XXXXXX")
trap 'rm -f "$out"' EXIT
"$tool" "$plugin" >"$out" 2>&1
rc=$?
cat "$out"
if [ "$rc" -ne "$want" ]; then
    echo "expect: exit status $rc, wanted $want"
    exit 1
fi
for re in "$@"; do
    if ! grep -Eq -- "$re" "$out"; then
        echo "expect: no output line matches '$re'"
        exit 1
    fi
done
echo "expect: exit status $rc and every expected line, as wanted"
