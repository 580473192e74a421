#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs the Check suites named as arguments from $BUILD/tests, with the
# binaries under test named by absolute path, and prints one summary line.
# An argument NAME.sh runs tests/NAME.sh, a shell suite that prints a
# Check-style summary line ("100%: Checks: N, Failures: F, Errors: 0").
# Exit status: 0 when every suite passed.
set -u
BUILD=${BUILD:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
# (check-valgrind puts a wrapper in its place.)
export MPSPAWN_FORKSERVER="${MPSPAWN_FORKSERVER_UNDER_TEST:-$top/$BUILD/mpforkserver}"
export MPSPAWN_CLI="$top/$BUILD/mpspawn"
export MPSPAWN_TOP="$top"
# Tests pick their own sockets; never a system or user server by accident.
unset MPSPAWN_SOCKET XDG_RUNTIME_DIR
# Nor does the CLI start a per-user server (which would outlive the run)
# but where a suite asks for one (check_userserver), nor find the one of
# whoever runs the tests in /tmp/mpspawn-UID.
export MPSPAWN_USER_SERVER=0 MPSPAWN_TMPDIR="$top/$BUILD/no-user-server"
# Check's fork mode, and a summary per suite.
export CK_FORK=yes CK_VERBOSITY=${CK_VERBOSITY:-normal}

# Sanitizer reports from any process of the run (the test binaries, the
# servers they start, embedded servers whose stderr is /dev/null, the CLI)
# land in files, and any file fails the run.
sanlogs="$top/$BUILD/sanitizer-logs"
rm -rf "$sanlogs"; mkdir -p "$sanlogs"
export ASAN_OPTIONS="log_path=$sanlogs/asan:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="log_path=$sanlogs/ubsan:print_stacktrace=1:${UBSAN_OPTIONS:-}"

passed=0 failed=0 bad_suites="" failing_checks=$(mktemp)
for spec in "$@"; do
  # SUITE:nopidfd runs SUITE with servers that track children by SIGCHLD,
  # the path taken on kernels without pidfds and under valgrind.
  t=${spec%%:*}
  nopidfd=
  [ "$spec" = "$t:nopidfd" ] && nopidfd=1
  log=$(mktemp)
  echo "== $spec"
  case $t in
  *.sh) BUILD=$BUILD sh "$top/tests/$t" 2>&1 | tee "$log" ;;
  *) MPSPAWN_SERVER_NO_PIDFD=$nopidfd "$top/$BUILD/tests/$t" 2>&1 | tee "$log" ;;
  esac
  # "100%: Checks: 20, Failures: 0, Errors: 0"
  line=$(grep -E '^[0-9]+%: Checks: ' "$log" | tail -n 1)
  checks=$(echo "$line" | sed -n 's/.*Checks: \([0-9]*\).*/\1/p')
  fails=$(echo "$line" | sed -n 's/.*Failures: \([0-9]*\).*/\1/p')
  errs=$(echo "$line" | sed -n 's/.*Errors: \([0-9]*\).*/\1/p')
  if [ -z "$checks" ]; then
    echo "$spec: no Check summary (crashed?)"
    failed=$((failed + 1)); bad_suites="$bad_suites $spec"
  else
    bad=$((fails + errs))
    passed=$((passed + checks - bad)); failed=$((failed + bad))
    [ "$bad" -eq 0 ] || bad_suites="$bad_suites $spec"
  fi
  # Check's "FILE:LINE:F:CASE:TEST:0: MESSAGE" lines, repeated in the
  # summary so that the tail of a long run names what failed.
  grep -E '^[^:]+:[0-9]+:[FE]:' "$log" >> "$failing_checks"
  rm -f "$log"
done
if [ -n "$(ls -A "$sanlogs")" ]; then
  echo "sanitizer reports:"
  for f in "$sanlogs"/*; do echo "--- $f"; cat "$f"; done
  failed=$((failed + 1)); bad_suites="$bad_suites (sanitizers)"
fi
echo
[ -z "$bad_suites" ] || echo "failing suites:$bad_suites"
if [ -s "$failing_checks" ]; then
  echo "failing checks:"
  sed 's/^/  /' "$failing_checks"
fi
rm -f "$failing_checks"
echo "checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
