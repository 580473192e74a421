#!/bin/sh
# SPDX-License-Identifier: MIT
# bench_callgrind.sh: user-space instructions per launch in mpforkserver,
# counted by callgrind. `make bench-callgrind` runs it; N=2000 by default.
#
# The server runs under valgrind --tool=callgrind on a temporary socket,
# with tests/preload_table.so preloaded (a 1 MiB table). After a warm-up,
# the counters are zeroed, N exec jobs (/bin/true) are run one at a time
# from a client (tests/bench --drive) and the counters dumped; then N call
# jobs ("noop") and a second dump. Instructions per launch = a dump's total
# divided by N. Only the server process is counted: forked children write
# their own files (call jobs) or leave valgrind at exec, and are ignored.
#
# Caveats: callgrind counts user-space instructions only, never the
# kernel's work (fork, exec, close_range, page-table copies), and runs the
# server some 50 times slower. valgrind 3.19 lacks pidfd_open, so the
# server falls back to tracking children by SIGCHLD (signalfd + wait4(-1))
# and pre-forking is off: a launch costs a signalfd read and one more
# wait4 instead of epoll_ctl on a pidfd, and exec jobs are forked instead
# of started by the vfork clone (which needs the clone's pidfd): a few
# hundred user-space instructions either way, small beside the JSON work
# that dominates, but not the production path for the kernel's share.
set -eu
BUILD=${BUILD:-build}
N=${N:-2000}
top=$(cd "$(dirname "$0")/.." && pwd)
b="$top/$BUILD"
command -v valgrind >/dev/null || { echo "bench-callgrind: valgrind is not installed (apt-get install valgrind)"; exit 1; }
dir=$(mktemp -d /tmp/mps-callgrind-XXXXXX)
sock="$dir/sock"
MPS_TEST_TABLE_MB=1 valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" \
  "$b/mpforkserver" --socket "$sock" --log-level warning \
  --preload "$b/tests/preload_table.so" 2>"$dir/valgrind.log" &
vpid=$!
cleanup() { kill "$vpid" 2>/dev/null || true; wait "$vpid" 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
# The server is ready when a job goes through.
i=0
until "$b/tests/bench" --drive "$sock" exec 1 >/dev/null 2>&1; do
  i=$((i + 1)); [ "$i" -lt 120 ] || { echo "server did not start:"; cat "$dir/valgrind.log"; exit 1; }
  sleep 1
done
"$b/tests/bench" --drive "$sock" exec 50 >/dev/null
"$b/tests/bench" --drive "$sock" call 50 >/dev/null
callgrind_control --zero "$vpid" >/dev/null
"$b/tests/bench" --drive "$sock" exec "$N"
callgrind_control --dump=exec "$vpid" >/dev/null
"$b/tests/bench" --drive "$sock" call "$N"
callgrind_control --dump=call "$vpid" >/dev/null
kill -TERM "$vpid"; wait "$vpid" || true
trap - EXIT INT TERM
grep -h "pidfd\|SIGCHLD" "$dir/valgrind.log" | sed 's/^/server log: /' | head -2
for part in 1:exec 2:call; do
  f="$dir/cg.$vpid.${part%%:*}"
  [ -s "$f" ] || { echo "bench-callgrind: no profile $f (see $dir/valgrind.log)"; exit 1; }
  total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p;s/^totals: *\([0-9]*\).*/\1/p' "$f" | head -1)
  echo
  echo "== ${part#*:} jobs: $total instructions for $N launches: $((total / N)) per launch"
  callgrind_annotate --inclusive=yes "$f" 2>/dev/null | sed -n '/^Ir/,$p' | head -40
done
echo
echo "profiles kept in $dir (callgrind_annotate --inclusive=yes $dir/cg.$vpid.1)"
