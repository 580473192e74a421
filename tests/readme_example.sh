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
