#!/bin/sh
# Plugin discovery and mc-info, end to end (see meson.build).
#   discovery.sh <mc-info binary> <build plugin dir>
set -eu
mcinfo=$(cd "$(dirname "$1")" && pwd -P)/$(basename "$1")
plugdir=$(cd "$2" && pwd -P)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mc-info-disc-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
fail() { printf 'FAIL: %s\n' "$*"; exit 1; }
unset MC_CONFIG MC_TRANSPORTS MC_PLUGIN_PATH || true
# No MC_TRANSPORT_* from the caller's environment may leak in.
for v in $(env | sed -n 's/^\(MC_TRANSPORT_[A-Za-z0-9_]*\)=.*/\1/p'); do
  unset "$v"
done
have_shm=0
[ -f "$plugdir/mc-transport-shm.so" ] && have_shm=1

run() { # run <name> <args...>: stdout to $tmp/<name>.out, stderr .err
  name=$1; shift
  if ! "$mcinfo" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"; then
    cat "$tmp/$name.out" "$tmp/$name.err"
    fail "$name: mc-info $* exited non-zero"
  fi
}
has() { grep -q -- "$2" "$tmp/$1.out" || { cat "$tmp/$1.out"; fail "$1: output lacks: $2"; }; }

# 1. From the build tree with nothing set: the build's plugins are found
#    (the build-tree plugin folder is on the search path) and load.
run plain
has plain "^  $plugdir\$"
has plain "LOADED    tcp        $plugdir/mc-transport-tcp.so"
[ $have_shm = 0 ] || has plain "LOADED    shm        $plugdir/mc-transport-shm.so"
has plain "rails (4): conn0 conn1 conn2 conn3"
# The build tree's folder and a missing install dir are normal: no warning.
if grep -q "plugin search entry" "$tmp/plain.err"; then
  cat "$tmp/plain.err"; fail "plain: a default search entry was warned about"
fi

# 2. MC_PLUGIN_PATH=<build>/plugins works, and comes first.
MC_PLUGIN_PATH=$plugdir run env
first=$(sed -n '3p' "$tmp/env.out")
[ "$first" = "  $plugdir" ] || fail "env: first search entry is '$first'"
has env "LOADED    tcp        $plugdir/mc-transport-tcp.so"
# ... also as a relative path, as in the README (MC_PLUGIN_PATH=build/plugins).
(cd "$plugdir/.." && MC_PLUGIN_PATH=plugins "$mcinfo" >"$tmp/rel.out" 2>"$tmp/rel.err") ||
  { cat "$tmp/rel.err"; fail "rel: mc-info exited non-zero"; }
[ "$(sed -n '3p' "$tmp/rel.out")" = "  plugins" ] || fail "rel: first search entry"
has rel "LOADED    tcp        $plugdir/mc-transport-tcp.so"
# The build tree's folder, named again by MC_PLUGIN_PATH (absolute or
# relative), is searched and listed once.
for f in env rel; do
  n=$(sed -n '/^plugin search path/,/^plugins/p' "$tmp/$f.out" | grep -c "^  ")
  [ "$n" -le 2 ] || { cat "$tmp/$f.out"; fail "$f: the build's plugin folder is listed twice"; }
done

# 3. A search entry that does not exist is warned about once, naming the
#    entry and where it came from; the others still work.
MC_PLUGIN_PATH="$tmp/nonexistent:$plugdir" run missing
has missing "LOADED    tcp"
n=$(grep -c "plugin search entry $tmp/nonexistent (from MC_PLUGIN_PATH)" "$tmp/missing.err" || true)
[ "$n" = 1 ] || { cat "$tmp/missing.err"; fail "missing entry warned $n times, not once"; }
grep -q " warn " "$tmp/missing.err" || fail "missing entry not at warn level"
printf 'plugin_path: [%s/nowhere]\ntransports: [tcp]\n' "$tmp" > "$tmp/pp.yaml"
run pp --config "$tmp/pp.yaml"
n=$(grep -c "plugin search entry $tmp/nowhere (from plugin_path)" "$tmp/pp.err" || true)
[ "$n" = 1 ] || { cat "$tmp/pp.err"; fail "plugin_path entry warned $n times, not once"; }

# 4. Transport names are [a-z0-9_]+: a badly named file is refused, with
#    the reason, and the good ones still load.
mkdir "$tmp/bad"
cp "$plugdir/mc-transport-tcp.so" "$tmp/bad/mc-transport-Bad-Name.so"
MC_PLUGIN_PATH="$tmp/bad" run badname
has badname "REFUSED   Bad-Name"
has badname "transport name 'Bad-Name' is not \[a-z0-9_\]+"
has badname "LOADED    tcp        $plugdir/mc-transport-tcp.so"
grep -q "mc-transport-Bad-Name.so refused" "$tmp/badname.err" ||
  { cat "$tmp/badname.err"; fail "bad name not logged"; }

# 5. The config's transports: section applies (its options, its list; the
#    other plugins are still listed, as AVAILABLE).
printf 'transports:\n  tcp: {connections: 2}\n' > "$tmp/two.yaml"
run two --config "$tmp/two.yaml"
has two "rails (2): conn0 conn1\$"
if [ $have_shm = 1 ]; then
  has two "AVAILABLE shm"
  # An AVAILABLE plugin is described from its own table.
  grep -A2 "AVAILABLE shm" "$tmp/two.out" | grep -q "ABI 1\.[0-9]" ||
    fail "two: the AVAILABLE shm plugin shows no ABI"
  grep -A12 "AVAILABLE shm" "$tmp/two.out" | grep -q "^              pool_size " ||
    fail "two: the AVAILABLE shm plugin shows no keys"
fi
MC_CONFIG="$tmp/two.yaml" run two_env
has two_env "rails (2): conn0 conn1\$"

# 6. MC_TRANSPORT_TCP_CONNECTIONS applies, with and without a config.
MC_TRANSPORT_TCP_CONNECTIONS=3 run three
has three "rails (3): conn0 conn1 conn2\$"
MC_TRANSPORT_TCP_CONNECTIONS=3 run three_cfg --config "$tmp/two.yaml"
has three_cfg "rails (3): conn0 conn1 conn2\$"

# 7. Each plugin's table: memory kinds, caps, slice size hint, keys with
#    type, default, range and help.
has plain "memory: local CPU, remote CPU"
has plain "slice size hint: 1M (1048576 bytes)"
has plain "keys (transports.tcp.<key> or MC_TRANSPORT_TCP_<KEY>):"
has plain "^              connections          int     4          1\.\.64\$"
has plain "^              socket_buffer        size    0 "
has plain "^              advertise_host       string  \"\"         -\$"
run json --json
if command -v python3 >/dev/null 2>&1; then
  python3 - "$tmp/json.out" "$have_shm" <<'PY' || fail "JSON check"
import json, sys
d = json.load(open(sys.argv[1]))
by = {p["name"]: p for p in d["plugins"]}
tcp = by["tcp"]
assert tcp["state"] == "LOADED" and len(tcp["rails"]) == 4, tcp
assert tcp["local_mem_kinds"] == ["CPU"] and tcp["remote_mem_kinds"] == ["CPU", "FILE"]
assert tcp["slice_size"] == 1 << 20 and "OWN_THREADS" in tcp["caps"]
keys = {p["name"]: p for p in tcp["params"]}
want = {"connections", "port", "timeout_ms", "connect_timeout_ms",
        "hello_timeout_ms", "max_inflight", "socket_buffer", "advertise_host"}
assert want <= set(keys), sorted(keys)
c = keys["connections"]
assert c["type"] == "int" and c["default"] == "4", c
assert (c["min"], c["max"]) == (1, 64), c
for k in keys.values():
    assert k["type"] in ("bool", "int", "size", "string") and k["help"], k
    if k["type"] in ("int", "size"):
        # every numeric key declares its range
        assert k["min"] is not None and k["min"] <= k["max"], k
    else:
        assert k["min"] is None and k["max"] is None, k
if sys.argv[2] == "1":
    shm = by["shm"]
    names = {p["name"] for p in shm["params"]}
    assert {"pool_path", "pool_size", "copy_threads", "copy_chunk"} <= names, names
    assert shm["slice_size"] == 4 << 20
PY
fi

# 8. --help works; a bad option or a bad config fails, and every error is
#    printed once.
"$mcinfo" --help >"$tmp/help.out" 2>&1 || fail "--help exited non-zero"
grep -q "^usage: mc-info" "$tmp/help.out" || fail "--help prints no usage"
grep -q -- "--yaml-keys" "$tmp/help.out" || fail "--help lacks --yaml-keys"
if "$mcinfo" --bogus >/dev/null 2>"$tmp/bogus.err"; then fail "--bogus accepted"; fi
[ "$(grep -c "unknown option '--bogus'" "$tmp/bogus.err")" = 1 ] || fail "--bogus message"
if "$mcinfo" --config "$tmp/none.yaml" >"$tmp/nocfg.out" 2>"$tmp/nocfg.err"; then
  fail "a missing config file was accepted"
fi
n=$(grep -c "none.yaml" "$tmp/nocfg.err" || true)
[ "$n" = 1 ] || { cat "$tmp/nocfg.err"; fail "missing config reported $n times, not once"; }
printf 'transports:\n  tcp: {conections: 2}\n' > "$tmp/typo.yaml"
if "$mcinfo" --config "$tmp/typo.yaml" >/dev/null 2>"$tmp/typo.err"; then
  fail "an unknown tcp key was accepted"
fi
n=$(grep -c "conections" "$tmp/typo.err" || true)
[ "$n" = 1 ] || { cat "$tmp/typo.err"; fail "unknown key reported $n times, not once"; }
echo "info-discovery: ok"
