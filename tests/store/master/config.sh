#!/bin/sh
# mooncake-master's settings: --help documents every upstream flag name;
# bad flags, values and YAML files fail at start with the flag's name or
# the file and line; a YAML file is applied and the command line wins.
# $1: the master.
set -u
M=$1
T=$(mktemp -d "${TMPDIR:-/tmp}/mc-store-config.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$M" --help >"$T/help" 2>&1 || fail "--help exited non-zero"
for f in rpc_port rpc_address rpc_thread_num default_kv_lease_ttl default_kv_soft_pin_ttl \
         max_kv_soft_pin_ttl allow_evict_soft_pinned_objects eviction_ratio \
         eviction_high_watermark_ratio client_ttl put_start_discard_timeout_sec \
         put_start_release_timeout_sec memory_allocator allocation_strategy cluster_id \
         config_path auth_token_file; do
  grep -q -- "--$f " "$T/help" || fail "--help does not document --$f"
done
grep -q "default: 50051" "$T/help" || fail "--help does not give the default port"

expect_err() { # expect_err TEXT ARGS...: exits non-zero saying TEXT
  want=$1; shift
  if "$M" "$@" >"$T/out" 2>&1; then fail "'$*' started"; fi
  grep -q -- "$want" "$T/out" || { cat "$T/out"; fail "'$*': no '$want' in the error"; }
}
expect_err "unknown flag '--no_such_flag=1'" --no_such_flag=1
expect_err "eviction_ratio: '1.5' is not a number" --eviction_ratio=1.5
expect_err "rpc_port: 'abc'" --rpc_port abc
expect_err "default_kv_lease_ttl: '10q'" --default_kv_lease_ttl=10q
expect_err "enable_ha: not supported" --enable_ha
expect_err "memory_allocator: 'cachelib' is not supported" --memory_allocator=cachelib
expect_err "rpc_port: missing value" --rpc_port

printf 'rpc_port: 0\neviction_ratio: 0.1\nno_such_key: 3\n' >"$T/bad-key.yaml"
expect_err "bad-key.yaml:3: unknown setting 'no_such_key'" --config_path="$T/bad-key.yaml"
printf 'rpc_port: 0\nclient_ttl: [1, 2\n' >"$T/bad-syntax.yaml"
expect_err "bad-syntax.yaml:3: YAML error" --config_path "$T/bad-syntax.yaml"
printf 'client_ttl: forever\n' >"$T/bad-value.yaml"
expect_err "bad-value.yaml:1: client_ttl: 'forever'" --config_path="$T/bad-value.yaml"
expect_err "cannot open" --config_path="$T/missing.yaml"

# A good file: its port is overridden by the command line (0 = any).
printf 'rpc_port: 1\nrpc_address: 127.0.0.1\ncluster_id: from-yaml\nclient_ttl: 5s\n' >"$T/good.yaml"
"$M" --config_path="$T/good.yaml" --rpc_port=0 --enable_metric_reporting=false >"$T/run" 2>&1 &
pid=$!
i=0
while [ $i -lt 100 ] && ! grep -q "listening on 127.0.0.1:" "$T/run"; do sleep 0.1; i=$((i+1)); done
grep -q "listening on 127.0.0.1:" "$T/run" || { kill -9 $pid; cat "$T/run"; fail "did not start from good.yaml"; }
grep -q "127.0.0.1:1 " "$T/run" && { kill -9 $pid; fail "the command line did not win over the file"; }
kill -TERM $pid
wait $pid || fail "did not stop cleanly on SIGTERM"
echo "config: all checks passed"
