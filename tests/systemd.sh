#!/bin/sh
# SPDX-License-Identifier: MIT
# systemd.sh DEBDIR: the packaged units under a real systemd, the way a user
# of Debian 12 gets them.
#
# A Debian 12 tree (debootstrap --variant=minbase with systemd, from
# Debian's archive; cached in $MPS_SYSTEMD_CACHE, /var/cache/mpspawn-systemd-test
# by default, and reused while it is there) is booted with systemd-nspawn
# --boot --ephemeral: systemd is PID 1 of the container, and every change
# is thrown away at the end. The packages in DEBDIR (make deb) are handed
# in read-write at /mps with tests/systemd-guest.sh, which runs as a
# oneshot unit once the system is up, writes its checks to /mps/guest.log
# and powers the container off. This script prints that log and the
# journal of the forkserver's units (activation, readiness, idle exit), and
# the guest's summary line, which tests/run.sh's format counts. The unit is
# added to the boot by systemd.wants= on PID 1's command line (a container's
# systemd reads its kernel command line options there); the last console
# output is kept in $cache/last-console.log.
#
# Needs root, systemd-nspawn (systemd-container) and debootstrap; "make
# check-systemd" installs them.
set -u
debs=${1:?usage: systemd.sh DEBDIR}
debs=$(cd "$debs" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${MPS_SYSTEMD_CACHE:-/var/cache/mpspawn-systemd-test}
mirror=${MPS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
tree=$cache/bookworm
tmp=$(mktemp -d /tmp/mpspawn-systemd-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# --- the cached Debian 12 tree -------------------------------------------------------
if [ ! -e "$tree/.mpspawn-complete" ]; then
  echo "systemd.sh: debootstrap bookworm into $tree (once; cached)"
  mkdir -p "$cache"
  rm -rf "$tree.tmp"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,libcjson1,libseccomp2,procps \
    bookworm "$tree.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    { tail -n 20 "$cache/debootstrap.log"; echo "systemd.sh: debootstrap failed"; exit 1; }
  rm -rf "$tree" && mv "$tree.tmp" "$tree"
  # Nothing in the guest needs these, and they cost boot time.
  rm -f "$tree"/etc/systemd/system/*.wants/systemd-timesyncd.service
  touch "$tree/.mpspawn-complete"
fi

# --- the run ---------------------------------------------------------------------------
cp "$debs"/mpspawn_*.deb "$debs"/libmpspawn0_*.deb "$tmp/"
cp "$top/tests/systemd-guest.sh" "$tmp/guest.sh"
cat >"$tmp/mpspawn-test.service" <<'EOF'
[Unit]
Description=mpspawn's systemd test (tests/systemd-guest.sh)
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/sh /mps/guest.sh
EOF
echo "systemd.sh: booting $tree (ephemeral) under systemd-nspawn"
start=$(date +%s)
timeout 240 systemd-nspawn --quiet --boot --ephemeral --register=no --keep-unit \
  --directory="$tree" --machine="mpspawn-test-$$" \
  --bind="$tmp:/mps" \
  --bind-ro="$tmp/mpspawn-test.service:/etc/systemd/system/mpspawn-test.service" \
  >"$tmp/console.log" 2>&1 </dev/null \
  -- systemd.wants=mpspawn-test.service
rc=$?
cp "$tmp/console.log" "$cache/last-console.log"
echo "systemd.sh: the container ran $(( $(date +%s) - start )) s, systemd-nspawn exited $rc"
if [ ! -s "$tmp/guest.log" ]; then
  echo "systemd.sh: the guest wrote no log; the container's console:"
  tail -n 40 "$tmp/console.log"
  echo "0%: Checks: 1, Failures: 1, Errors: 0"
  exit 1
fi
echo "== the guest's checks"
cat "$tmp/guest.log"
echo "== journal of mpforkserver.socket and mpforkserver.service (monotonic seconds)"
cat "$tmp/journal.txt" 2>/dev/null
# The summary last, where a reader (and run.sh's format) looks for it.
grep -E '^[0-9]+%: Checks: ' "$tmp/guest.log" | tail -n 1
grep -qE '^100%: Checks: [0-9]+, Failures: 0, Errors: 0' "$tmp/guest.log"
