#!/bin/sh
# SPDX-License-Identifier: MIT
# bench_steps.sh: where a job's time goes, step by step. `make bench-steps`
# runs it; N=1000 jobs per phase by default.
#
# The server is built a second time with -DMPS_STEPS (in $BUILD/steps):
# then it and its children stamp CLOCK_MONOTONIC at each step of a job
# (forkserver/steps.h) and it prints one "steps" line per job on stderr.
# The client (tests/bench --drive, MPS_BENCH_STEPS=1) prints its own three
# stamps per job. One job runs at a time, so line i of each side is job i.
# Phases: exec jobs (/bin/true), call jobs ("noop", 1 MiB table), and call
# jobs with --prefork 8. Each interval is given as p50 and p90 over N jobs.
#
# Stamps cost about 50 ns each; the intervals are wall time and include
# waiting for a CPU (2 CPUs here: client, server and child share them).
set -eu
BUILD=${BUILD:-build}
N=${N:-1000}
top=$(cd "$(dirname "$0")/.." && pwd)
b="$top/$BUILD"
sb="$b/steps"
dir=$(mktemp -d /tmp/mps-steps-XXXXXX)
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  for p in $pids; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_lines NAME COUNT: until server NAME has printed COUNT steps lines
# (it prints a job's just after sending its exit; bounded).
wait_lines() {
  i=0
  while [ "$(grep -c '^steps ' "$dir/$1.log" || true)" -lt "$2" ]; do
    i=$((i + 1)); [ "$i" -lt 100 ] || { echo "bench-steps: missing steps lines"; exit 1; }
    sleep 0.05
  done
}

# start_server NAME [ARGS...]: a steps server on $dir/NAME.sock, its stderr
# in $dir/NAME.log; returns once a job went through.
start_server() {
  name=$1; shift
  MPS_TEST_TABLE_MB=1 "$sb/mpforkserver" --socket "$dir/$name.sock" --log-level warning \
    --preload "$b/tests/preload_table.so" "$@" 2>>"$dir/$name.log" &
  pids="$pids $!"
  i=0
  until "$b/tests/bench" --drive "$dir/$name.sock" exec 1 >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -lt 100 ] || { echo "bench-steps: server $name did not start"; cat "$dir/$name.log"; exit 1; }
    sleep 0.1
  done
  echo 1 >"$dir/$name.jobs" # that one job
}

# phase NAME KIND TITLE: N jobs of KIND against server NAME, then the table.
phase() {
  name=$1 kind=$2 title=$3
  "$b/tests/bench" --drive "$dir/$name.sock" "$kind" 20 >/dev/null # warm-up
  # Every job so far has its line before these start, so that the last N
  # lines are these jobs'. $dir/NAME.jobs counts the server's jobs.
  before=$(($(cat "$dir/$name.jobs") + 20))
  wait_lines "$name" "$before"
  MPS_BENCH_STEPS=1 "$b/tests/bench" --drive "$dir/$name.sock" "$kind" "$N" |
    grep '^client ' >"$dir/$name.$kind.client"
  echo $((before + N)) >"$dir/$name.jobs"
  wait_lines "$name" $((before + N))
  grep '^steps ' "$dir/$name.log" | tail -n "$N" >"$dir/$name.$kind.server"
  # Line i of each side is job i: both must have exactly N.
  for side in server client; do
    lines=$(wc -l <"$dir/$name.$kind.$side")
    [ "$lines" -eq "$N" ] || { echo "bench-steps: $lines $side lines for $N jobs"; exit 1; }
  done
  echo
  echo "### $title: $N jobs, one at a time"
  echo
  echo "| step | p50 us | p90 us |"
  echo "| --- | ---: | ---: |"
  # steps R F C0 CR P S X E (see forkserver/steps.h); client T0 T1 T2.
  paste -d ' ' "$dir/$name.$kind.server" "$dir/$name.$kind.client" | awk -v kind="$kind" '
    function put(i, label, v) { if (v != "") printf "%02d\t%s\t%.1f\n", i, label, v / 1000 }
    {
      R = $2; F = $3; C0 = $4; CR = $5; P = $6; S = $7; X = $8; E = $9
      T0 = $11; T1 = $12; T2 = $13
      put(1, "client: mps_start sends the request -> server takes it", R - T0)
      if (kind == "exec") {
        put(2, "server: request -> vfork child runs (decode, pipe, clone)", C0 - R)
        put(3, "child: set-up (fds, cwd, signals)", CR - C0)
        put(4, "child: execve of /bin/true -> server resumes from clone", F - CR)
        put(5, "server: clone returned -> exec pipe read", P - F)
      } else {
        put(2, "server: request -> fork (or hand-over) returns in the server", F - R)
        put(3, "child: fork returned -> first line in the child", C0 - F)
        put(4, "child: set-up (fds, cwd, signals, hooks)", CR - C0)
        put(5, "child set up -> server reads the exec pipe (its closing)", P - CR)
      }
      put(6, "server: exec pipe read -> sends spawned", S - P)
      put(7, "server sends spawned -> mps_start returns in the client", T1 - S)
      if (kind == "exec")
        put(8, "exec done -> server notices the exit (/bin/true runs)", X - F)
      else
        put(8, "child set up -> server notices the exit (entry runs, exits)", X - CR)
      put(9, "server: exit noticed (wait4) -> sends exited", E - X)
      put(10, "server sends exited -> mps_join returns in the client", T2 - E)
      put(11, "total: mps_start + mps_join in the client", T2 - T0)
    }' >"$dir/$name.$kind.values"
  for i in $(cut -f1 "$dir/$name.$kind.values" | sort -u); do
    grep "^$i	" "$dir/$name.$kind.values" | sort -t '	' -k3,3g | awk -F '\t' '
      { v[NR] = $3; label = $2 }
      END { printf "| %s | %.1f | %.1f |\n", label, v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)] }'
  done
}

echo "bench-steps: $(nproc) CPUs, $(uname -r); N=$N"
start_server plain
start_server prefork --prefork 8
phase plain exec "exec job /bin/true"
phase plain call "call job noop (1 MiB table)"
phase prefork call "call job noop (1 MiB table), --prefork 8"
