#!/bin/sh
# SPDX-License-Identifier: MIT
# bench_compare.sh: launch rows of this tree against another commit's, in
# one run. `make bench-compare BASE=REF` runs it (REF: any commit; the
# default is origin/main or main).
#
# REF is built in a git worktree, build-base/ (kept for the next run). Each side
# starts its own servers (exec and call: tests/preload_table.so with a
# 1 MiB table; call --prefork: the same with --prefork 4), and its own
# bench binary drives them (tests/bench --drive), so that each side's
# library talks to its own server. The sides alternate in ROUNDS blocks of
# N jobs each (ABAB...), so drift and other load fall on both alike; the
# table gives each side's median microseconds per job over the rounds and
# the ratio head/base, and the same for the server's CPU time per job
# (its scheduler run time from /proc/PID/sched around each block, or
# user + system from /proc/PID/stat where that file is missing). Both sides are
# driven by this tree's tests/bench.c (public header only), linked with each
# side's own library, so that a row a newer bench added runs on both.
# Not a test: it passes or fails nothing.
set -eu
BUILD=${BUILD:-build}
N=${N:-1000}
ROUNDS=${ROUNDS:-5}
BASE=${BASE:-main}
top=$(cd "$(dirname "$0")/.." && pwd)
head="$top/$BUILD"
base_src="$top/build-base"
dir=$(mktemp -d /tmp/mps-compare-XXXXXX)
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  for p in $pids; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rev=$(git -C "$top" rev-parse --verify "$BASE^{commit}")
if [ ! -d "$base_src" ] || [ "$(git -C "$base_src" rev-parse HEAD 2>/dev/null)" != "$rev" ]; then
  rm -rf "$base_src"; git -C "$top" worktree prune
  git -C "$top" worktree add -q --detach "$base_src" "$rev"
fi
echo "base: $(git -C "$top" log -1 --format='%h %s' "$rev")" >&2
echo "head: $(git -C "$top" log -1 --format='%h %s') (+ working tree)" >&2
make -C "$base_src" --no-print-directory -s all build/tests/bench build/tests/preload_table.so >/dev/null
base="$base_src/build"
# This tree's driver, linked with the base's library.
${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -g -I/usr/include/cjson -I"$top/include" -pthread \
  -o "$base/tests/bench" "$top/tests/bench.c" "$base/libmpspawn.a" -lcjson -lm

# start SIDE NAME EXTRA...: a server of that side on $dir/SIDE.NAME.sock
start() {
  b=$1; name=$2; sock="$dir/$2.sock"; shift 2
  MPS_TEST_TABLE_MB=1 "$b/mpforkserver" --socket "$sock" --log-level warning \
    --preload "$b/tests/preload_table.so" "$@" 2>>"$dir/servers.log" &
  pids="$pids $!"
  echo $! >"$dir/$name.pid"
  i=0
  until "$b/tests/bench" --drive "$sock" exec 1 >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -lt 200 ] || { echo "server did not start:"; cat "$dir/servers.log"; exit 1; }
    sleep 0.05 # bounded polling while the server starts
  done
}
for side in base head; do
  eval "b=\$$side"
  start "$b" "$side.plain"
  start "$b" "$side.prefork" --prefork 4
done

# The server's CPU time so far, in microseconds: the scheduler's own
# sum_exec_runtime (ms with ns digits, /proc/PID/sched; the server's one
# thread) where the kernel has it, else user + system from /proc/PID/stat,
# whose clock ticks are 10 us per job at N=1000: too coarse for a 10 %
# change.
hz=$(getconf CLK_TCK)
cpu_us() {
  if [ -r "/proc/$1/sched" ] && grep -q '^se.sum_exec_runtime' "/proc/$1/sched"; then
    awk '$1 == "se.sum_exec_runtime" {printf "%.0f", $3 * 1000}' "/proc/$1/sched"
  else
    awk -v hz="$hz" '{printf "%.0f", ($14 + $15) * 1e6 / hz}' "/proc/$1/stat"
  fi
}
# One block: microseconds per job, from bench --drive's own line, and the
# server's CPU microseconds per job.
block() {
  eval "b=\$$1"
  spid=$(cat "$dir/$1.$2.pid")
  t0=$(cpu_us "$spid")
  us=$("$b/tests/bench" --drive "$dir/$1.$2.sock" "$3" "$N" | sed -n 's/.*(\([0-9.]*\) us each)/\1/p')
  t1=$(cpu_us "$spid")
  echo "$us $(awk -v d=$((t1 - t0)) -v n="$N" 'BEGIN {printf "%.1f", d / n}')"
}
# NAME:SERVER:KIND (tests/bench --drive SOCKET KIND N)
ROWS=${ROWS:-"exec:plain:exec call:plain:call call-prefork:prefork:call exec-8-in-flight:plain:exec8 map-exec-64-workers:plain:execmap map-call-64-workers:plain:callmap"}
for r in $(seq "$ROUNDS"); do
  for row in $ROWS; do
    name=${row%%:*}; rest=${row#*:}; server=${rest%%:*}; kind=${rest#*:}
    for side in base head; do
      echo "$name $side $(block "$side" "$server" "$kind")" >>"$dir/samples"
    done
  done
  echo "round $r of $ROUNDS done" >&2
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
printf '| row (%s jobs x %s rounds, interleaved) | base us/job | head us/job | head/base | base server CPU us/job | head server CPU us/job | head/base |\n' "$N" "$ROUNDS"
printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n'
for row in $ROWS; do
  name=${row%%:*}
  mb=$(awk -v r="$name" '$1 == r && $2 == "base" {print $3}' "$dir/samples" | median)
  mh=$(awk -v r="$name" '$1 == r && $2 == "head" {print $3}' "$dir/samples" | median)
  cb=$(awk -v r="$name" '$1 == r && $2 == "base" {print $4}' "$dir/samples" | median)
  ch=$(awk -v r="$name" '$1 == r && $2 == "head" {print $4}' "$dir/samples" | median)
  awk -v r="$name" -v b="$mb" -v h="$mh" -v cb="$cb" -v ch="$ch" \
    'BEGIN {printf "| %s | %.1f | %.1f | %.3f | %.1f | %.1f | %.3f |\n", r, b, h, h / b, cb, ch, (cb > 0 ? ch / cb : 0)}'
done
