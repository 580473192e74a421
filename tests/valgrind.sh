#!/bin/sh
# SPDX-License-Identifier: MIT
# make check-valgrind: the end-to-end suites with every mpforkserver they
# start (test servers, embedded ones, `mpspawn server`) running under
# valgrind's memcheck. Fails on any memcheck error or definite leak.
# valgrind lacks pidfd_open, so these servers take their SIGCHLD path.
set -u
BUILD=${BUILD:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
logs="$top/$BUILD/valgrind-logs"
rm -rf "$logs"; mkdir -p "$logs"
wrapper="$top/$BUILD/valgrind-mpforkserver"
cat > "$wrapper" <<EOW
#!/bin/sh
exec valgrind --quiet --error-exitcode=99 --leak-check=full \\
  --errors-for-leak-kinds=definite --show-leak-kinds=definite \\
  --log-file="$logs/%p.log" "$top/$BUILD/mpforkserver" "\$@"
EOW
chmod +x "$wrapper"
MPSPAWN_FORKSERVER_UNDER_TEST="$wrapper" BUILD=$BUILD sh "$top/tests/run.sh" \
  check_process check_pool check_cli
rc=$?
bad=$(grep -lE "ERROR SUMMARY: [1-9]|definitely lost: [1-9]" "$logs"/*.log 2>/dev/null)
if [ -n "$bad" ]; then
  for f in $bad; do echo "--- $f"; cat "$f"; done
  echo "valgrind: memcheck errors or definite leaks in $(echo "$bad" | wc -l) server processes"
  exit 1
fi
echo "valgrind: $(ls "$logs" | wc -l) server processes checked, no errors, no definite leaks"
exit $rc
