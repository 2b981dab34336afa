#!/bin/bash
# readme_block.sh SRCDIR BUILDDIR HEADING
#
# Runs the first ```sh block under the README.md section "## HEADING" word
# for word, as a user in a checkout would: from a folder laid out like the
# checkout (build/ is BUILDDIR, examples/ and ../shared/ are the source
# tree's), with bash -e, so any failing line fails the test.  Processes the
# block starts in the background are killed when it ends.  meson defines
# the test only when the section's programs are built.
set -u
src=$(cd "$1" && pwd) build=$(cd "$2" && pwd) heading=$3
readme=$src/README.md
block=$(awk -v h="## $heading" '
  $0 == h { insec = 1; next }
  insec && /^## / { exit }
  insec && /^```sh$/ { inblk = 1; next }
  inblk && /^```$/ { exit }
  inblk { print }' "$readme")
[ -n "$block" ] || { echo "FAIL: no sh block under '## $heading' in $readme"; exit 1; }

tmp=$(mktemp -d) || exit 1
mkdir -p "$tmp/main"
ln -s "$build" "$tmp/main/build"
ln -s "$src/examples" "$tmp/main/examples"
[ -d "$src/../shared" ] && ln -s "$(cd "$src/../shared" && pwd)" "$tmp/shared"

echo "running the README block under '## $heading':"
printf '%s\n' "$block" | sed 's/^/  | /'
cd "$tmp/main" || exit 1
printf 'set -e\n%s\n' "$block" > "$tmp/block.sh"
# Its own process group, so its background jobs can be killed afterwards.
setsid bash "$tmp/block.sh" > "$tmp/out" 2>&1 &
pid=$!
wait $pid
rc=$?
kill -TERM -- -$pid 2> /dev/null
sleep 0.5
kill -KILL -- -$pid 2> /dev/null
cat "$tmp/out"
rm -rf "$tmp"
if [ $rc -ne 0 ]; then
  echo "FAIL: the README block under '## $heading' exited $rc"
  exit 1
fi
echo "ok: the README block under '## $heading' ran word for word"
