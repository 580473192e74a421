#!/bin/sh
# SPDX-License-Identifier: MIT
# The README's library example must be docs/example.c to the letter (which
# the build compiles), and it must run and say what the README says.
set -eu
BUILD=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
sed -n '/^```c$/,/^```$/p' "$top/README.md" | sed '1d;$d' > "$tmp"
if ! diff -u "$top/docs/example.c" "$tmp"; then
  echo "readme-example: README.md's C example differs from docs/example.c"
  exit 1
fi
out=$(MPSPAWN_FORKSERVER="$top/$BUILD/mpforkserver" "$top/$BUILD/tests/example")
echo "$out" | grep -q '^job [0-9]* exited with 3$' || { echo "readme-example: unexpected output: $out"; exit 1; }
echo "$out" | grep -q '^sleeper ended with -15 ' || { echo "readme-example: unexpected output: $out"; exit 1; }
echo "readme-example: README example matches docs/example.c and runs"

# The shell examples of "Jobs of other invocations", run as written (with
# this build, in directories of our own): the per-user server the first
# command starts, and a shared server started without a race and stopped.
dir=$(mktemp -d)
trap 'rm -f "$tmp"; rm -rf "$dir"' EXIT
mkdir -m 0700 "$dir/run"
sed -n '/^### Jobs of other invocations$/,/^### /p' "$top/README.md" |
  sed -n 's/^    \$ //p' |
  sed -e "s|\./build/|$top/$BUILD/|g" -e "s|/tmp/mps\.|$dir/mps.|g" > "$dir/script"
out=$(cd "$dir" && env -u MPSPAWN_SOCKET -u MPSPAWN_USER_SERVER XDG_RUNTIME_DIR="$dir/run" \
        MPSPAWN_USER_SERVER_IDLE=1 MPSPAWN_FORKSERVER="$top/$BUILD/mpforkserver" \
        timeout 60 sh "$dir/script" 2>&1) ||
  { echo "readme-example: the shell examples failed: $out"; exit 1; }
for want in '^1 [0-9]*$' 'nap  *sh -c exec' '^status 143$' '^1$' '^clients: *1$' '^status 0$'; do
  echo "$out" | grep -q "$want" ||
    { echo "readme-example: no '$want' in the shell examples' output: $out"; exit 1; }
done
# The per-user server goes once idle (1 s here): bounded wait for its socket
# to go, so that it never outlives the test.
i=0
while [ -e "$dir/run/mpspawn.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ ! -e "$dir/run/mpspawn.sock" ] || { echo "readme-example: the per-user server did not go"; exit 1; }
echo "readme-example: README shell examples run as written"

# The Python example of "## Python", run as written with this build.
if [ -e "$top/$BUILD/mpspawn_python.so" ] && command -v python3 >/dev/null; then
  sed -n '/^## Python$/,/^## /p' "$top/README.md" | sed -n '/^```python$/,/^```$/p' |
    sed '1d;$d' > "$dir/example.py"
  out=$(cd "$dir" && PYTHONPATH="$top/python" timeout 60 python3 example.py 2>&1) ||
    { echo "readme-example: the Python example failed: $out"; exit 1; }
  want=$(printf '0 49\n[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\n3')
  [ "$out" = "$want" ] || { echo "readme-example: the Python example printed: $out"; exit 1; }
  echo "readme-example: README Python example runs as written"
fi
