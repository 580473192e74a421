#!/bin/sh
# SPDX-License-Identifier: MIT
# deb.sh DIR: the Debian packages in DIR (make deb), as a user gets them.
#
#  1. lintian (with --pedantic and info tags) reports nothing but the tags
#     overridden, with their reasons, in debian/*.lintian-overrides.
#  2. The four packages install with apt-get; the maintainer scripts
#     created the group mpspawn (sysusers.d) and enabled the socket unit.
#  3. The installed mpspawn runs a job, and a client built with the
#     installed pkg-config file runs its jobs, with no MPSPAWN_* variable:
#     each finds /usr/bin/mpforkserver by itself; Debian's python3 with
#     the installed Python package runs Python targets (operator.add,
#     os.getpid) in a private server started with the installed
#     embedded-CPython preload.
#  4. apt-get purge removes every file of theirs, and the enablement.
#
# Run by "make deb-check" as root (it installs packages on this machine);
# packages of ours already installed are purged first. Prints a Check-style
# summary line.
set -u
dir=${1:?usage: deb.sh DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$(cd "$dir" && pwd)
CC=${CC:-cc}
tmp=$(mktemp -d /tmp/mpspawn-deb-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
checks=0 failures=0
pass() { checks=$((checks + 1)); echo "ok: $1"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAILED: $1"; }
check() { # check DESCRIPTION COMMAND...
  what=$1; shift
  if "$@" >"$tmp/out" 2>&1; then pass "$what"; else fail "$what"; sed 's/^/  | /' "$tmp/out"; fi
}
apt() { DEBIAN_FRONTEND=noninteractive apt-get -y -q "$@"; }
pkgs="mpspawn libmpspawn0 libmpspawn-dev python3-mpspawn"
# No XDG_RUNTIME_DIR: the CLI's per-user server goes in a private directory,
# under $tmp here (MPSPAWN_TMPDIR) rather than /tmp, and is stopped below.
# (One line: it is pasted into sh -c command lines.)
noenv="env -u MPSPAWN_FORKSERVER -u MPSPAWN_CLI -u MPSPAWN_TOP -u MPSPAWN_SOCKET -u MPSPAWN_DEBUG"
noenv="$noenv -u XDG_RUNTIME_DIR -u MPSPAWN_USER_SERVER MPSPAWN_TMPDIR=$tmp"
usersock=$tmp/mpspawn-$(id -u)/mpspawn.sock

if [ "$(id -u)" != 0 ]; then
  echo "deb.sh: must run as root (it installs the packages)"; exit 1
fi
ls -l "$dir"/*.deb
for p in $pkgs; do
  f=$(ls "$dir"/${p}_*.deb 2>/dev/null | head -n 1)
  check "package $p built ($(du -k "$f" 2>/dev/null | cut -f1) KiB)" test -f "$f"
done

upstream=$(sed -n 's/^VERSION *:= *//p' "$top/Makefile")
check "debian/changelog's version is the Makefile's ($upstream)" \
  test "$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)" = "$upstream"

# --- 1. lintian -------------------------------------------------------------------
command -v lintian >/dev/null || { apt update >/dev/null; apt install --no-install-recommends lintian >/dev/null; }
lintian -I --pedantic "$dir"/*.changes >"$tmp/lintian" 2>&1
grep -v '^running with root privileges' "$tmp/lintian" >"$tmp/lintian.tags"
echo "lintian -I --pedantic:"; sed 's/^/  | /' "$tmp/lintian.tags"
check "lintian reports no tag that is not overridden" test ! -s "$tmp/lintian.tags"

# --- 2. install ---------------------------------------------------------------------
apt purge $pkgs >/dev/null 2>&1
check "apt-get install the four packages" \
  apt install --no-install-recommends "$dir"/mpspawn_*.deb "$dir"/libmpspawn0_*.deb \
    "$dir"/libmpspawn-dev_*.deb "$dir"/python3-mpspawn_*.deb
for p in $pkgs; do
  check "$p is installed" sh -c "dpkg-query -W -f '\${Status}' $p | grep -q 'install ok installed'"
done
check "the group mpspawn exists (systemd-sysusers in postinst)" getent group mpspawn
check "mpforkserver.socket is enabled" \
  test -L /etc/systemd/system/sockets.target.wants/mpforkserver.socket
check "user units are not enabled for every user" \
  test ! -e /etc/systemd/user/sockets.target.wants/mpforkserver.socket
check "/etc/mpspawn/forkserver.conf is a conffile" \
  sh -c "dpkg-query -W -f '\${Conffiles}' mpspawn | grep -q /etc/mpspawn/forkserver.conf"
check "the installed configuration is valid" \
  /usr/bin/mpforkserver --check-config --config /etc/mpspawn/forkserver.conf
check "bash completion is where bash-completion looks" \
  test -f "$(pkg-config --variable=completionsdir bash-completion 2>/dev/null ||
             echo /usr/share/bash-completion/completions)/mpspawn"
check "man mpspawn" sh -c "man -w mpspawn | grep -q /usr/share/man/man1/mpspawn.1"
for d in policy.md batch.md protocol.md security.md; do
  check "/usr/share/doc/mpspawn/$d installed" test -f /usr/share/doc/mpspawn/$d
done
check "mpspawn --help names the installed documents" \
  sh -c "mpspawn --help | grep -q '^/usr/share/doc/mpspawn/'"
check "the man pages name the installed documents" \
  sh -c "man -P cat mpspawn 2>/dev/null | grep -q /usr/share/doc/mpspawn/policy.md &&
         man -P cat mpforkserver 2>/dev/null | grep -q /usr/share/doc/mpspawn/protocol.md"

# --- 3. use ----------------------------------------------------------------------------
check "mpspawn runs a job (per-user server from /usr/bin/mpforkserver)" \
  sh -c "cd / && $noenv mpspawn -- sh -c 'echo job \$\$ ran' | grep -q '^job [0-9]* ran$'"
$noenv mpspawn -- sh -c 'exit 7' >/dev/null 2>&1
check "mpspawn exits with the job's status" test $? -eq 7
check "the per-user server listens in the private directory" test -S "$usersock"
check "mpspawn ps finds it" sh -c "$noenv mpspawn ps | grep -q '^ID '"
# Stopped by its pid (the one process with that socket on its command line).
userpid=$(pgrep -f -x "/usr/bin/mpforkserver --socket $usersock .*" | head -n 1)
check "the per-user server is /usr/bin/mpforkserver" test -n "$userpid"
[ -n "$userpid" ] && kill "$userpid"
cp "$top/docs/example.c" "$tmp/client.c"
check "pkg-config finds the installed mpspawn.pc" pkg-config --exists mpspawn
# shellcheck disable=SC2046 # the flags are words
check "a client builds against the installed package" \
  $CC -o "$tmp/client" "$tmp/client.c" $(pkg-config --cflags --libs mpspawn)
check "the client runs its jobs" \
  sh -c "cd '$tmp' && $noenv ./client > client.out 2>&1 &&
         grep -q '^job [0-9]* exited with 3$' client.out &&
         grep -q '^sleeper ended with -15 (-15: SIGTERM)$' client.out || { cat client.out; exit 1; }"
# libmpspawn.a with what --static adds for it (cJSON has no static library
# in Debian: its shared one is linked).
static_libs=$(pkg-config --static --libs mpspawn | sed 's/-lmpspawn/-l:libmpspawn.a/')
# shellcheck disable=SC2046,SC2086
check "a client links the static library (pkg-config --static: $static_libs)" \
  $CC -o "$tmp/client-static" "$tmp/client.c" $(pkg-config --cflags mpspawn) $static_libs
check "that client runs its jobs" \
  sh -c "cd '$tmp' && $noenv ./client-static > client.out 2>&1 &&
         grep -q '^job [0-9]* exited with 3$' client.out || { cat client.out; exit 1; }"

# The Python package as a user's program imports it: Debian's python3 (not
# one first on PATH), from dist-packages, not the tree (run from /, no
# PYTHONPATH), its targets functions of modules.
check "the mpspawn package does not depend on libpython" \
  sh -c "! dpkg-query -W -f '\${Depends}' mpspawn | grep -q libpython"
check "python3 imports the installed mpspawn" \
  sh -c "cd / && env -u PYTHONPATH /usr/bin/python3 -c 'import mpspawn; print(mpspawn.__file__)' |
         grep -q '^/usr/lib/python3/dist-packages/mpspawn/__init__.py$'"
preload=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/mpspawn/mpspawn_python.so
check "$preload installed" test -f "$preload"
cat >"$tmp/target.py" <<'EOF'
import operator, os, mpspawn
if __name__ == "__main__":  # the server imports this main module, as spawn does
    p = mpspawn.Process(target=operator.add, args=(40, 2))
    p.start(); p.join()
    assert p.exitcode == 0 and p.result == 42, (p.exitcode, p.result)
    q = mpspawn.Process(target=os.getpid)
    q.start(); q.join()
    assert q.exitcode == 0 and q.result == q.pid != os.getpid(), (q.exitcode, q.result, q.pid)
    print("python target ok", p.result, q.result)
EOF
check "the installed python3-mpspawn runs Python targets (operator.add, os.getpid)" \
  sh -c "cd / && $noenv env -u PYTHONPATH -u PYTHONDONTWRITEBYTECODE /usr/bin/python3 '$tmp/target.py' 2>&1 |
         tee /dev/stderr | grep -q '^python target ok 42 '"

# --- 4. purge --------------------------------------------------------------------------
dpkg-query -L $pkgs 2>/dev/null | sort -u >"$tmp/files"
check "apt-get purge the four packages" apt purge $pkgs
left=$(while read -r f; do [ -f "$f" ] && echo "$f"; done <"$tmp/files")
check "no file of theirs is left ($(wc -l <"$tmp/files") listed)" test -z "$left"
[ -z "$left" ] || echo "$left" | sed 's/^/  | /'
check "the socket's enablement is gone" \
  test ! -e /etc/systemd/system/sockets.target.wants/mpforkserver.socket
check "/etc/mpspawn is gone" test ! -e /etc/mpspawn
# Root's python3 above wrote bytecode (as it may): py3clean (dh_python3's
# prerm) removes it, so dpkg removes the directory.
check "/usr/lib/python3/dist-packages/mpspawn is gone (no __pycache__ left)" \
  test ! -e /usr/lib/python3/dist-packages/mpspawn

pct=100
[ "$checks" -gt 0 ] && pct=$(( (checks - failures) * 100 / checks ))
echo "$pct%: Checks: $checks, Failures: $failures, Errors: 0"
[ "$failures" -eq 0 ]
