#!/bin/sh
# SPDX-License-Identifier: MIT
# systemd-guest.sh: the half of tests/systemd.sh that runs inside the booted
# Debian 12 container, as the unit mpspawn-test.service, once the system is
# up. /mps holds the packages to test; this script writes /mps/guest.log
# (its checks and a Check-style summary line) and /mps/journal.txt (the
# journal of the forkserver's units), then powers the container off.
#
# What it exercises, on the units as the packages install them:
#  - installing enables and starts mpforkserver.socket, and nothing starts
#    the service until a client connects (socket activation);
#  - Type=notify: the service is "active" only once the server said READY=1,
#    and its STATUS= line is what systemctl shows;
#  - a member of the group mpspawn runs a job as herself, through the
#    system socket, in the service's cgroup; a user outside the group is
#    refused by the socket's permissions;
#  - reload: ExecReload= sends SIGHUP, and the same server process reloads
#    its configuration and goes on serving;
#  - idle exit (idle_exit in forkserver.conf) and activation again on the
#    next connection, by a new server process;
#  - systemctl stop ends the jobs that outlived their client.
set -u
log=/mps/guest.log
exec >"$log" 2>&1
checks=0 failures=0
pass() { checks=$((checks + 1)); echo "ok: $1"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAILED: $1"; }
check() { # check DESCRIPTION COMMAND...
  what=$1; shift
  if "$@" >/tmp/out 2>&1; then pass "$what"; else fail "$what"; sed 's/^/  | /' /tmp/out; fi
}
state() { systemctl show -P "$2" "$1"; }
# waitfor SECONDS COMMAND...: until COMMAND succeeds, at most SECONDS.
waitfor() {
  n=$(($1 * 10)); shift
  while [ "$n" -gt 0 ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; n=$((n - 1)); done
  return 1
}
sock=/run/mpspawn/forkserver.sock
stamp() { echo "-- $(cut -d' ' -f1 /proc/uptime) s: $*"; }

stamp "system up: $(systemctl is-system-running)"
check "dpkg -i mpspawn libmpspawn0" dpkg -i /mps/mpspawn_*.deb /mps/libmpspawn0_*.deb
check "the group mpspawn was created" getent group mpspawn
check "mpforkserver.socket is enabled" systemctl is-enabled mpforkserver.socket
check "mpforkserver.socket is listening" systemctl is-active mpforkserver.socket
check "the socket is root:mpspawn 0660" sh -c "stat -c '%U:%G %a' $sock | grep -qx 'root:mpspawn 660'"
check "the service is not started yet" sh -c "! systemctl is-active mpforkserver.service"

# Idle exit after 3 s, for the test; set before the first activation.
echo "idle_exit = 3" >>/etc/mpspawn/forkserver.conf
check "the edited configuration is valid" \
  mpforkserver --check-config --config /etc/mpspawn/forkserver.conf

useradd -m -G mpspawn alice
useradd -m bob
stamp "first connection"
out=$(runuser -u alice -- mpspawn -s "$sock" -- sh -c 'echo "$(id -un) $PPID $(cat /proc/self/cgroup | tail -n 1)"')
echo "job printed: $out"
check "socket activation: the first connection started the service" systemctl is-active mpforkserver.service
pid1=$(state mpforkserver.service MainPID)
check "the job ran as alice, a member of mpspawn" test "${out%% *}" = alice
check "the job is a child of the service's main process ($pid1)" \
  sh -c "echo '$out' | cut -d' ' -f2 | grep -qx '$pid1'"
check "the job ran in the service's cgroup" sh -c "echo '$out' | grep -q 'mpforkserver.service'"
check "Type=notify" test "$(state mpforkserver.service Type)" = notify
status=$(state mpforkserver.service StatusText)
echo "StatusText: $status"
check "readiness: the server's STATUS= line is the service's status" test -n "$status"
check "the journal shows the server's own start-up line" \
  sh -c "journalctl -u mpforkserver.service -b | grep -q 'listening on'"
check "bob, not in mpspawn, is refused by the socket" \
  sh -c "! runuser -u bob -- mpspawn -s $sock -- true"
check "systemctl reload succeeds (ExecReload= sends SIGHUP)" \
  systemctl reload mpforkserver.service
check "the same server process runs on after the reload" \
  test "$(state mpforkserver.service MainPID)" = "$pid1"
check "the server logged that it reloaded its configuration" \
  waitfor 10 sh -c "journalctl -u mpforkserver.service -b | grep -q 'received SIGHUP; reloaded'"
check "it still serves a member of mpspawn after the reload" \
  runuser -u alice -- mpspawn -s $sock -- true

stamp "waiting for the idle exit"
check "idle exit: the service stops by itself after 3 idle seconds" \
  waitfor 15 sh -c "! systemctl is-active mpforkserver.service"
stamp "idle exit seen: $(state mpforkserver.service Result)"
check "the idle exit was clean (Result=success)" test "$(state mpforkserver.service Result)" = success
check "the socket is still listening" systemctl is-active mpforkserver.socket
stamp "second connection"
# (Into a file: the job inherits mpspawn's stdout, and would hold a pipe open.)
runuser -u alice -- mpspawn -s "$sock" --detach --name sleeper sleep 600 >/tmp/detached
id=$(cut -d' ' -f1 /tmp/detached)
check "re-activation: the next connection started it again" systemctl is-active mpforkserver.service
pid2=$(state mpforkserver.service MainPID)
check "a new server process ($pid1, then $pid2)" test "$pid2" != "$pid1"
check "alice's detached job $id runs" \
  sh -c "runuser -u alice -- mpspawn -s $sock ps | grep -q 'sleep 600'"
check "a daemon job keeps the server from idling out" \
  sh -c "sleep 5; systemctl is-active mpforkserver.service"
stamp "systemctl stop"
t0=$(date +%s)
check "systemctl stop mpforkserver.service" systemctl stop mpforkserver.service
# The job got SIGTERM (from the server and, KillMode=control-group, from
# systemd) and ended at once: nothing waited for the grace period (5 s) or
# TimeoutStopSec (90 s).
check "the stop took less than the grace period" test $(( $(date +%s) - t0 )) -lt 5
check "stop ended the daemon job" sh -c "! pgrep -u alice -x sleep"
check "the server was told to stop (SIGTERM, logged)" \
  sh -c "journalctl -u mpforkserver.service -b | grep -q 'received SIGTERM, stopping'"
check "the stop was clean (Result=success)" test "$(state mpforkserver.service Result)" = success
check "dpkg --purge mpspawn libmpspawn0" dpkg --purge mpspawn libmpspawn0
check "the socket is gone with the package" sh -c "! systemctl is-active mpforkserver.socket && ! test -e $sock"

journalctl -b -o short-monotonic -u mpforkserver.socket -u mpforkserver.service >/mps/journal.txt
pct=100
[ "$checks" -gt 0 ] && pct=$(( (checks - failures) * 100 / checks ))
echo "$pct%: Checks: $checks, Failures: $failures, Errors: 0"
systemctl --no-block poweroff
