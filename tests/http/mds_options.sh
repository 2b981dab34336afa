#!/bin/sh
# mooncake-metadata-server's connection options (issue 12): upstream's
# --port N form, the connection limits and idle timeout reported at start,
# and bad values refused with exit 2.
#   mds_options.sh <mooncake-metadata-server>
bin=$1
tmp=$(mktemp -d) || exit 1
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
"$bin" --port 0 --max-connections 100 --max-per-ip 5 --connection-timeout 2 \
  >"$tmp/out" 2>"$tmp/err" &
pid=$!
i=0
while [ $i -lt 100 ] && ! grep -q listening "$tmp/out"; do
  sleep 0.1
  i=$((i + 1))
done
cat "$tmp/out" "$tmp/err"
grep -q '^mooncake-metadata-server listening on http://0\.0\.0\.0:[1-9][0-9]*/metadata' "$tmp/out" || exit 1
grep -q 'at most 100 connections, 5 per client address, 2 s idle timeout' "$tmp/err" || exit 1
kill $pid
wait $pid || exit 1
pid=
for bad in "--port 70000" "--port x" "--max-connections 0" "--max-per-ip 0" \
           "--connection-timeout 0" "--connection-timeout 9999"; do
  # shellcheck disable=SC2086
  out=$("$bin" $bad 2>&1)
  rc=$?
  [ $rc -eq 2 ] || { echo "'$bad': exit $rc, want 2"; exit 1; }
  echo "$out" | grep -q "^mooncake-metadata-server: bad" || { echo "'$bad': $out"; exit 1; }
done
"$bin" --help | grep -q -- '--max-per-ip      connections at once from one client address (default 64)' || exit 1
echo "mds options ok"
