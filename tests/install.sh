#!/bin/sh
# SPDX-License-Identifier: MIT
# install.sh: "make install" as a packager and as an administrator use it.
#
#  1. make install DESTDIR=...: every file lands where it should, the soname
#     links are right, the units name the installed binary and config.
#  2. A small client (docs/example.c, the README's) is built against the
#     installed header and library through pkg-config, and runs with no
#     MPSPAWN_* variable set: the library starts the installed mpforkserver
#     by the path it was built with. A DESTDIR install is only staged, so
#     the client runs in a private mount namespace where the staged tree is
#     mounted at its PREFIX, as it would be once installed (needs root;
#     skipped, and said, without). Then the same with PREFIX=/usr and a
#     Debian multiarch LIBDIR, after a plain "make": what install rebuilds
#     must name /usr, and no /usr/local may be left anywhere.
#  3. The installed sample configuration passes --check-config; the man
#     pages format without warnings.
#  4. make uninstall removes every file.
#     (Also: the Python preload library and package land in LIBDIR/mpspawn
#     and PREFIX/lib/python3/dist-packages, and the server finds the
#     installed library.)
#  5. The units pass "systemd-analyze verify" (system and user), which
#     needs the binaries and man pages they name to exist: so they are
#     installed for real under a temporary PREFIX, and verify must print
#     nothing at all (it exits 0 even for unknown keys and bad values). A
#     deliberately broken copy must make it complain, or the check proves
#     nothing. A client built against this real installation runs with no
#     MPSPAWN_* variable and no namespace. The sysusers.d file must create the group (dry run), and
#     "systemctl enable" (offline, with --root) must find the units where
#     they were installed and enable them through their [Install] sections.
#
# Run by tests/run.sh with BUILD, CC and SANITIZE from the Makefile. Prints a
# Check-style summary line, which run.sh counts.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
CC=${CC:-cc}
SANITIZE=${SANITIZE:-}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
tmp=$(mktemp -d /tmp/mpspawn-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
checks=0 failures=0

pass() { checks=$((checks + 1)); echo "ok: $1"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAILED: $1"; }
check() { # check DESCRIPTION COMMAND...
  what=$1; shift
  if "$@" >"$tmp/out" 2>&1; then pass "$what"; else fail "$what"; sed 's/^/  | /' "$tmp/out"; fi
}
mk() { make -C "$top" --no-print-directory -s BUILD="$BUILD" "$@"; }

# --- 1. a staged installation ----------------------------------------------------
dest=$tmp/dest
p=$dest/usr/local
check "make install DESTDIR" mk install DESTDIR="$dest"
for f in bin/mpforkserver bin/mpspawn include/mpspawn.h lib/libmpspawn.a \
         lib/libmpspawn.so.0.1.0 lib/pkgconfig/mpspawn.pc \
         lib/systemd/system/mpforkserver.socket lib/systemd/system/mpforkserver.service \
         lib/systemd/user/mpforkserver.socket lib/systemd/user/mpforkserver.service \
         lib/sysusers.d/mpspawn.conf share/doc/mpspawn/forkserver.conf.sample \
         share/man/man1/mpspawn.1 share/man/man3/libmpspawn.3 \
         share/man/man5/mpforkserver.conf.5 share/man/man8/mpforkserver.8 \
         share/bash-completion/completions/mpspawn share/doc/mpspawn/policy.md \
         share/doc/mpspawn/batch.md share/doc/mpspawn/NEWS share/doc/mpspawn/protocol.md \
         share/doc/mpspawn/security.md \
         share/doc/mpspawn/policy-examples/cat.policy lib/mpspawn/mpspawn_python.so \
         $(cd "$top/python" && ls mpspawn/*.py | sed 's|^|lib/python3/dist-packages/|'); do
  check "installed $f" test -f "$p/$f"
done
check "installed /etc/mpspawn/forkserver.conf" test -f "$dest/etc/mpspawn/forkserver.conf"
check "soname link" test "$(readlink "$p/lib/libmpspawn.so.0")" = libmpspawn.so.0.1.0
check "dev link" test "$(readlink "$p/lib/libmpspawn.so")" = libmpspawn.so.0
check "library soname" sh -c "readelf -d '$p/lib/libmpspawn.so.0.1.0' | grep -q 'SONAME.*\[libmpspawn.so.0\]'"
check "system unit names the installed binary and config" \
  grep -qx 'ExecStart=/usr/local/bin/mpforkserver --config /etc/mpspawn/forkserver.conf' \
  "$p/lib/systemd/system/mpforkserver.service"
check "user unit names the installed binary" \
  grep -qx 'ExecStart=/usr/local/bin/mpforkserver --idle-exit 600' \
  "$p/lib/systemd/user/mpforkserver.service"
check "no placeholder left in the units or man pages" \
  sh -c "! grep -r '@[A-Z]*@' '$p/lib/systemd' '$p/share/man'"
check "man pages name the installed sample and documents" \
  sh -c "grep -q '^.I /usr/local/share/doc/mpspawn/forkserver.conf.sample' '$p/share/man/man5/mpforkserver.conf.5' &&
         grep -q '^.IR /usr/local/share/doc/mpspawn/policy.md' '$p/share/man/man1/mpspawn.1' &&
         grep -q '^.IR /usr/local/share/doc/mpspawn/protocol.md' '$p/share/man/man8/mpforkserver.8'"
check "no man page sends the reader to the source for a document" \
  sh -c "! grep -l 'of the source' '$p'/share/man/man*/*"
check "mpspawn --help names the installed documents" \
  sh -c "'$p/bin/mpspawn' --help | grep -q '^/usr/local/share/doc/mpspawn/'"
check "bash completion for mpforkserver is a link to mpspawn's" \
  test "$(readlink "$p/share/bash-completion/completions/mpforkserver")" = mpspawn
check "the shared library is not executable" sh -c "! test -x '$p/lib/libmpspawn.so.0.1.0'"
check "the Python preload library is mode 0644" \
  test "$(stat -c %a "$p/lib/mpspawn/mpspawn_python.so")" = 644

# --- 2. a client built through pkg-config against the installed files ----------
pc() { PKG_CONFIG_PATH=$p/lib/pkgconfig $PKG_CONFIG --define-variable=prefix="$p" "$@"; }
check "pkg-config knows mpspawn $(pc --modversion mpspawn 2>/dev/null)" pc --exists mpspawn
cflags=$(pc --cflags mpspawn) libs=$(pc --libs mpspawn)
check "pkg-config flags point into the installation ($cflags $libs)" \
  sh -c "case ' $cflags ' in *' -I$p/include '*) ;; *) exit 1;; esac &&
         case ' $libs ' in *' -L$p/lib -lmpspawn '*) ;; *) exit 1;; esac"
# The client lives outside the source tree, so only the installed header can
# be found.
cp "$top/docs/example.c" "$tmp/client.c"
# shellcheck disable=SC2086 # the flags are words
check "client compiles and links" $CC $SANITIZE -o "$tmp/client" "$tmp/client.c" $cflags $libs
check "client is linked to the shared library" \
  sh -c "readelf -d '$tmp/client' | grep -q 'NEEDED.*\[libmpspawn.so.0\]'"
# runs_jobs WHAT COMMAND...: COMMAND (a client) runs its three jobs.
runs_jobs() {
  what=$1; shift
  if "$@" >"$tmp/client.out" 2>&1 &&
     grep -q '^hello from job [0-9]*$' "$tmp/client.out" &&
     grep -q '^job [0-9]* exited with 3$' "$tmp/client.out" &&
     grep -q '^sleeper ended with -15 (-15: SIGTERM)$' "$tmp/client.out"; then
    pass "$what"
  else
    fail "$what"; sed 's/^/  | /' "$tmp/client.out"
  fi
}
# No MPSPAWN_* variable (run.sh sets some for the other suites), no
# XDG_RUNTIME_DIR: the client starts its own server, by the built-in path.
noenv="env -u MPSPAWN_FORKSERVER -u MPSPAWN_CLI -u MPSPAWN_TOP -u MPSPAWN_SOCKET
  -u MPSPAWN_DEBUG -u XDG_RUNTIME_DIR"
# as_installed STAGED PREFIX COMMAND...: COMMAND with STAGED mounted at PREFIX.
as_installed() {
  staged=$1 prefix=$2; shift 2
  unshare -m sh -c 'mount --make-rprivate / && mount --bind "$0" "$1" && shift && exec "$@"' \
    "$staged" "$prefix" "$@"
}
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
  runs_jobs "client runs jobs through the installed server, no MPSPAWN_* set" \
    as_installed "$p" /usr/local $noenv LD_LIBRARY_PATH=/usr/local/lib "$tmp/client"
else
  pass "skipped: running the staged install needs root and mount namespaces"
fi

# The issue's case: "make && make install DESTDIR=... PREFIX=/usr" with
# Debian's multiarch LIBDIR.
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
dest2=$tmp/dest2
mk all >/dev/null 2>&1
check "make install PREFIX=/usr LIBDIR=/usr/lib/$ma DESTDIR after make" \
  mk install DESTDIR="$dest2" PREFIX=/usr LIBDIR=/usr/lib/$ma
check "libmpspawn.so starts /usr/bin/mpforkserver" \
  grep -qa '/usr/bin/mpforkserver' "$dest2/usr/lib/$ma/libmpspawn.so.0.1.0"
check "mpspawn starts /usr/bin/mpforkserver" grep -qa '/usr/bin/mpforkserver' "$dest2/usr/bin/mpspawn"
check "mpspawn --help names /usr/share/doc/mpspawn" grep -qa '/usr/share/doc/mpspawn' "$dest2/usr/bin/mpspawn"
# (Not the whole path: the compiler may store its tail as immediates.)
check "mpforkserver looks for /usr/lib/$ma/mpspawn/mpspawn_python.so" \
  grep -qa "/usr/lib/$ma/mpspawn/mpspawn_python" "$dest2/usr/bin/mpforkserver"
check "the Python package is in /usr/lib/python3/dist-packages" \
  test -f "$dest2/usr/lib/python3/dist-packages/mpspawn/__init__.py"
# (/usr/local/bin stays in the jobs' default PATH, and in examples; the
# README describes the default prefix.)
check "no installed file names a /usr/local installation path" \
  sh -c "! grep -rlaE '/usr/local/(bin/mp|lib/(systemd|sysusers|pkgconfig|libmpspawn|mpspawn/|python3)|share/doc|include)' '$dest2' |
         grep -v /share/doc/"
check "mpspawn.pc: libdir is the multiarch one" \
  grep -qx "libdir=\${prefix}/lib/$ma" "$dest2/usr/lib/$ma/pkgconfig/mpspawn.pc"
check "units installed under /usr name /usr/bin" \
  grep -qx 'ExecStart=/usr/bin/mpforkserver --config /etc/mpspawn/forkserver.conf' \
  "$dest2/usr/lib/systemd/system/mpforkserver.service"
check "mpspawn.pc: no include directory of cJSON's" \
  sh -c "! PKG_CONFIG_PATH='$dest2/usr/lib/$ma/pkgconfig' $PKG_CONFIG --define-variable=prefix='$dest2/usr' --cflags mpspawn | grep -q cjson"
check "mpspawn.pc: a static link gets -lcjson" \
  sh -c "PKG_CONFIG_PATH='$dest2/usr/lib/$ma/pkgconfig' $PKG_CONFIG --static --libs mpspawn | grep -q -- -lcjson"
mk all >/dev/null 2>&1

# --- 3. configuration and man pages ---------------------------------------------------
check "installed sample config is valid" \
  "$p/bin/mpforkserver" --check-config --config "$dest/etc/mpspawn/forkserver.conf"
for m in "$p"/share/man/man*/*; do
  check "man page $(basename "$m") formats without warnings" \
    sh -c "groff -man -ww -z '$m' 2>&1 | tee /dev/stderr | wc -c | grep -qx 0"
done

# --- 4. uninstall -----------------------------------------------------------------------
check "make uninstall" mk uninstall DESTDIR="$dest"
check "nothing left after uninstall" \
  sh -c "test -z \"\$(find '$dest' -type f -o -type l)\" || find '$dest' -type f -o -type l"
# An edited configuration is kept.
mk install DESTDIR="$dest" >/dev/null 2>&1
echo "idle_exit = 60" >>"$dest/etc/mpspawn/forkserver.conf"
mk uninstall DESTDIR="$dest" >/dev/null 2>&1
check "an edited configuration survives uninstall" test -f "$dest/etc/mpspawn/forkserver.conf"

# --- 5. systemd-analyze verify on installed units ----------------------------------------
# PREFIX=ROOT/usr/local: the paths inside ROOT are those of a real install
# (for systemctl --root), and ExecStart names a binary that exists.
root=$tmp/root
rp=$root/usr/local
check "make install PREFIX=<temporary root>/usr/local" \
  mk install PREFIX="$rp" SYSCONFDIR="$root/etc"
sysunits=$rp/lib/systemd/system
userunits=$rp/lib/systemd/user
mkdir -p "$tmp/runtime" && chmod 0700 "$tmp/runtime"
verify() { # verify [--user] UNIT...: succeeds only when verify says nothing
  MANPATH=$rp/share/man XDG_RUNTIME_DIR=$tmp/runtime \
    systemd-analyze "$@" >"$tmp/verify" 2>&1
  rc=$?
  cat "$tmp/verify"
  [ "$rc" -eq 0 ] && [ ! -s "$tmp/verify" ]
}
check "systemd-analyze verify: system units" \
  verify verify "$sysunits/mpforkserver.socket" "$sysunits/mpforkserver.service"
check "systemd-analyze verify: user units" \
  verify --user verify "$userunits/mpforkserver.socket" "$userunits/mpforkserver.service"
mkdir -p "$tmp/broken"
sed 's/^KillMode=/KillMod=/' "$sysunits/mpforkserver.service" >"$tmp/broken/mpforkserver.service"
cp "$sysunits/mpforkserver.socket" "$tmp/broken/"
if verify verify "$tmp/broken/mpforkserver.service" >/dev/null 2>&1; then
  fail "systemd-analyze verify notices a broken unit"
else
  pass "systemd-analyze verify notices a broken unit"
fi
cflags=$(PKG_CONFIG_PATH=$rp/lib/pkgconfig $PKG_CONFIG --cflags mpspawn)
libs=$(PKG_CONFIG_PATH=$rp/lib/pkgconfig $PKG_CONFIG --libs mpspawn)
# shellcheck disable=SC2086 # the flags are words
check "client built against <temporary root>/usr/local" \
  $CC $SANITIZE -o "$tmp/client2" "$tmp/client.c" $cflags $libs -Wl,-rpath,"$rp/lib"
runs_jobs "that client runs jobs through its server, no MPSPAWN_* set" $noenv "$tmp/client2"
# The installed server embeds Python from the installed library (none is
# beside it), and the installed package imports (python3 compiles it into
# __pycache__, which uninstall must remove too). Not in the sanitizer
# builds: libpython is no sanitized program, and python3 cannot load a
# sanitized libmpspawn.
if [ -z "$SANITIZE" ]; then
  check "installed mpforkserver --python-preload json loads $rp/lib/mpspawn/mpspawn_python.so" \
    sh -c "'$rp/bin/mpforkserver' -s '$tmp/py.sock' --idle-exit 0.2 --python-preload json 2>&1 |
           grep -F 'preloaded $rp/lib/mpspawn/mpspawn_python.so: 2 entry points'"
  check "the installed Python package imports from <temporary root>" \
    sh -c "LD_LIBRARY_PATH='$rp/lib' PYTHONPATH='$rp/lib/python3/dist-packages' /usr/bin/python3 -c \
           'import mpspawn; print(mpspawn.__file__)' |
           grep -qx '$rp/lib/python3/dist-packages/mpspawn/__init__.py'"
else
  pass "skipped under SANITIZE: the installed server with Python, and the package's import"
fi
check "sysusers.d file creates the group mpspawn" \
  sh -c "systemd-sysusers --dry-run --root='$tmp/sysroot' '$rp/lib/sysusers.d/mpspawn.conf' 2>&1 |
         grep -q \"Creating group 'mpspawn'\""
check "systemctl enable mpforkserver.socket (offline)" \
  sh -c "systemctl --root='$root' enable mpforkserver.socket &&
         test -L '$root/etc/systemd/system/sockets.target.wants/mpforkserver.socket'"
check "systemctl --global enable mpforkserver.socket (user unit, offline)" \
  sh -c "systemctl --root='$root' --global enable mpforkserver.socket &&
         test -L '$root/etc/systemd/user/sockets.target.wants/mpforkserver.socket'"
rm -rf "$root/etc/systemd"
check "make uninstall PREFIX=<temporary root>/usr/local" \
  mk uninstall PREFIX="$rp" SYSCONFDIR="$root/etc"
check "nothing left after uninstall" \
  sh -c "test -z \"\$(find '$root' -type f -o -type l)\" || find '$root' -type f -o -type l"

# Back to the build's own paths for the suites that follow.
mk all >/dev/null 2>&1

pct=100
[ "$checks" -gt 0 ] && pct=$(( (checks - failures) * 100 / checks ))
echo "$pct%: Checks: $checks, Failures: $failures, Errors: 0"
[ "$failures" -eq 0 ]
