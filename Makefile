# SPDX-License-Identifier: MIT
# mpspawn: build, test, install.
#
#   make            build mpforkserver, mpspawn, libmpspawn.{a,so}
#   make demo       install missing build dependencies, build, run a real job
#   make check      install missing build dependencies, build, run every test
#   make check-asan the whole suite under AddressSanitizer + UBSan
#   make check-tsan the threaded client's suites under ThreadSanitizer
#   make bench      launches through the server against fork/posix_spawn,
#                   Python's multiprocessing, and the server's memory; a
#                   markdown table (BENCH_ARGS=--json for JSON). Not a test.
#   make bench-callgrind  instructions per launch in the server (valgrind)
#   make bench-steps      where a job's time goes, step by step
#   make bench-compare    BASE=REF: launch rows against another commit's, interleaved
#   make bench-policy  what a seccomp policy costs (compile, cache hit, load)
#   make fuzz       FUZZ_SECONDS=30: each libFuzzer target for that long (clang)
#   make install    PREFIX=/usr/local DESTDIR= (binaries, libraries, header,
#                   pkg-config file, man pages, systemd units, sample config,
#                   the Python preload library and the Python package)
#   make uninstall  the same variables: removes what install installed
#   make deb        the Debian packages (dpkg-buildpackage), in build-deb/
#   make deb-check  them, lintian, installed, used and purged (root)
#   make check-systemd  the packaged units under systemd in a Debian 12
#                   container (debootstrap, systemd-nspawn; root)
#
# Every output goes under $(BUILD) (build/ by default; build-asan/ for the
# sanitizer build; build-tsan/ for ThreadSanitizer's; build-fuzz/ for the
# fuzz targets), so they never mix.

VERSION      := 0.1.0
SOVERSION    := 0
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DATADIR      ?= $(PREFIX)/share
MANDIR       ?= $(DATADIR)/man
DOCDIR       ?= $(DATADIR)/doc/mpspawn
# The service reads $(SYSCONFDIR)/mpspawn/forkserver.conf. /etc whatever the
# prefix: that is where an administrator looks for a system service's file.
SYSCONFDIR   ?= /etc
# systemd's directories come from its pkg-config file, relative to PREFIX:
# /usr/local/lib/systemd/system (and .../user, .../sysusers.d) by default,
# /usr/lib/... for PREFIX=/usr; all are on systemd's search paths.
SYSTEMD_PC    = $(PKG_CONFIG) --define-variable=prefix=$(PREFIX) \
                --define-variable=root_prefix=$(PREFIX) systemd
UNITDIR      ?= $(or $(shell $(SYSTEMD_PC) --variable=systemdsystemunitdir 2>/dev/null),$(PREFIX)/lib/systemd/system)
USERUNITDIR  ?= $(or $(shell $(SYSTEMD_PC) --variable=systemduserunitdir 2>/dev/null),$(PREFIX)/lib/systemd/user)
SYSUSERSDIR  ?= $(or $(shell $(SYSTEMD_PC) --variable=sysusersdir 2>/dev/null),$(PREFIX)/lib/sysusers.d)
DESTDIR      ?=

BUILD        ?= build
CC           ?= cc
PKG_CONFIG   ?= pkg-config

# Debian packages that provide what we build against, and the tools the
# tests use: systemd (systemd-socket-activate, systemd-analyze, systemd.pc
# for the unit directories), man-db (systemd-analyze verify runs man(1) for
# Documentation=), groff-base (the man pages are checked with groff) and
# bash-completion (its completionsdir, and the completion test runs it).
# libuv1-dev and libevent-dev: the event-loop examples (docs/examples/),
# which make check builds and runs; nothing else links them.
# python3-pytest: the Python package's tests (python/python.mk).
# python3-dev: python3-embed.pc and libpython, which the embedded-CPython
# preload library (mpspawn_python.so) is built against.
DEB_PACKAGES := build-essential pkg-config libseccomp-dev libcjson-dev check libsystemd-dev \
                systemd man-db groff-base bash-completion \
                libuv1-dev libevent-dev python3-pytest python3-dev
PKG_MODULES  := libcjson libseccomp check libsystemd systemd bash-completion \
                libuv libevent_core python3-embed
DEP_COMMANDS := systemd-socket-activate systemd-analyze man groff
DEP_PYTHON_MODULES := pytest

CJSON_CFLAGS    = $(shell $(PKG_CONFIG) --cflags libcjson 2>/dev/null)
CJSON_LIBS      = $(shell $(PKG_CONFIG) --libs libcjson 2>/dev/null) -lm
SECCOMP_LIBS    = $(shell $(PKG_CONFIG) --libs libseccomp 2>/dev/null)
# The server dlopens libsystemd.so.0 when a service manager is there (see
# forkserver/service.c): only its header is needed at build time.
SYSTEMD_CFLAGS  = $(shell $(PKG_CONFIG) --cflags libsystemd 2>/dev/null)
CHECK_CFLAGS    = $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS      = $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral \
            -Wstrict-prototypes -Wmissing-prototypes -Wvla
CFLAGS   ?= -O2 -g
SANITIZE ?=
# CPPFLAGS: a distribution's preprocessor flags (Debian's -D_FORTIFY_SOURCE).
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CPPFLAGS) $(CFLAGS) $(SANITIZE) \
             -DMPS_VERSION_STRING='"$(VERSION)"' \
             $(CJSON_CFLAGS)
LIB_CFLAGS = $(ALL_CFLAGS) -fPIC -fvisibility=hidden -DMPS_BUILDING_LIBRARY
ALL_LDFLAGS = $(LDFLAGS) $(SANITIZE)

# The wire codec and helpers are one set of files used by both sides.
COMMON_SRC := launcher/wire.c launcher/transport.c launcher/say.c launcher/fdutil.c launcher/idmap.c \
              launcher/rlimits.c launcher/number.c launcher/selfpath.c
LIB_SRC    := $(COMMON_SRC) launcher/client.c launcher/spec.c launcher/process.c \
              launcher/job_requests.c launcher/pool.c launcher/cmdline.c launcher/share.c \
              launcher/pool_call.c launcher/envcache.c launcher/pidfd_exit.c \
              launcher/embedded.c
SERVER_SRC := forkserver/main.c forkserver/server.c forkserver/loop.c forkserver/listen.c \
              forkserver/connection.c forkserver/spawn.c forkserver/spawn_batch.c \
              forkserver/job.c forkserver/child.c \
              forkserver/timer.c forkserver/log.c forkserver/retain.c forkserver/closer.c \
              forkserver/request.c forkserver/preload.c forkserver/preload_arena.c \
              forkserver/prefork.c \
              forkserver/policy.c forkserver/config.c forkserver/access.c \
              forkserver/service.c forkserver/steps.c forkserver/peer.c forkserver/keeper.c \
              forkserver/result.c forkserver/envstore.c \
              forkserver/adopt.c forkserver/python_preload.c \
              $(COMMON_SRC)
CLI_SRC    := launcher/mpspawn.c launcher/cli.c launcher/cli_options.c launcher/cli_common.c \
              launcher/cli_batch.c launcher/cli_subcommands.c \
              launcher/cli_fds.c launcher/cli_server.c \
              launcher/cli_pty.c

LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/lib/%.o)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ    := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)

# The fuzz targets (tests/fuzz_*.c) run under libFuzzer in `make fuzz`; the
# replay suites run the same targets, built with $(CC), on the seed corpus
# and on every input that once broke them (tests/corpus/T, tests/regress/T).
FUZZ_TARGETS := wire policy cmdline
FUZZ_REPLAYS := $(FUZZ_TARGETS:%=fuzz_%_replay)

# Check suites in $(BUILD)/tests, and shell suites in tests/ (NAME.sh, which
# print a Check-style summary line for tests/run.sh).
TESTS      := check_util check_wire check_spec check_idmap check_cmdline check_policy check_child \
              check_config check_timer check_arena \
              check_process check_pool check_call check_jobpolicy check_hardening check_context \
              check_fairness check_isolation check_cli check_cli_parse check_service check_small \
              check_cli_run check_pty \
              check_examples \
              check_terminal \
              check_bigspec \
              check_differential \
              check_userserver \
              check_threads \
              check_pidfd_exit \
              check_embedded \
              check_envref \
              check_batch \
              $(FUZZ_REPLAYS)
SH_TESTS   := install.sh completion.sh
TEST_BINS  := $(TESTS:%=$(BUILD)/tests/%)

SONAME     := libmpspawn.so.$(SOVERSION)
PROGRAMS   := $(BUILD)/mpforkserver $(BUILD)/mpspawn
LIBS       := $(BUILD)/libmpspawn.a $(BUILD)/libmpspawn.so.$(VERSION)
# The embedded-CPython preload library (python_preload, --python-preload).
# Not in the sanitizer builds: libpython is no sanitized program, and the
# suites skip the Python server tests there (SANITIZE set).
PYTHON_PRELOAD := $(if $(SANITIZE),,$(BUILD)/mpspawn_python.so)

.PHONY: all deps demo check check-asan check-tsan check-valgrind soak test tests install uninstall \
        deb deb-check check-systemd clean bench bench-compare bench-callgrind bench-steps bench-policy fuzz fuzz-deps fuzz-build
SUDO_APT = if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
.DEFAULT_GOAL := all

all: $(PROGRAMS) $(LIBS) $(BUILD)/mpspawn.pc $(PYTHON_PRELOAD)

# --- dependencies --------------------------------------------------------------
# Installs what is missing (as root, with apt-get update first: a fresh
# machine may have no package lists). Does nothing when all is present.
deps:
	@missing=""; \
	command -v $(CC) >/dev/null 2>&1 || missing="$$missing build-essential"; \
	command -v $(PKG_CONFIG) >/dev/null 2>&1 || missing="$$missing pkg-config"; \
	for m in $(PKG_MODULES); do \
	  $(PKG_CONFIG) --exists $$m 2>/dev/null || missing="$$missing $$m"; \
	done; \
	for c in $(DEP_COMMANDS); do \
	  command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; \
	done; \
	for m in $(DEP_PYTHON_MODULES); do \
	  /usr/bin/python3 -c "import $$m" >/dev/null 2>&1 || missing="$$missing python3-$$m"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: missing:$$missing; installing $(DEB_PACKAGES)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(DEB_PACKAGES); \
	else \
	  echo "deps: all build dependencies present"; \
	fi

# --- build -----------------------------------------------------------------------
$(BUILD)/lib/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SYSTEMD_CFLAGS) -MMD -MP -c $< -o $@

# The one object that embeds an installation path: the server binary a
# private (embedded) server is started from, $(BINDIR)/mpforkserver. It is
# rebuilt whenever that path changes, so "make install PREFIX=/usr" after a
# plain "make" relinks the library and the CLI with the path they are
# installed under. $(BUILD)/forkserver-path holds the path of the last build,
# rewritten only when it differs: make then sees it as newer than client.o.
FORKSERVER_PATH = $(BINDIR)/mpforkserver
$(BUILD)/lib/launcher/client.o: LIB_CFLAGS += -DMPS_FORKSERVER_PATH='"$(FORKSERVER_PATH)"'
$(BUILD)/lib/launcher/client.o: $(BUILD)/forkserver-path
$(BUILD)/forkserver-path: FORCE
	@mkdir -p $(BUILD)
	@echo '$(FORKSERVER_PATH)' | cmp -s - $@ || echo '$(FORKSERVER_PATH)' > $@
FORCE:
# Likewise the Python preload library's installed path, where the server
# looks for it when there is none beside its own binary.
PYTHON_PRELOAD_PATH = $(LIBDIR)/mpspawn/mpspawn_python.so
$(BUILD)/obj/forkserver/python_preload.o: ALL_CFLAGS += -DMPS_PYTHON_PRELOAD_PATH='"$(PYTHON_PRELOAD_PATH)"'
$(BUILD)/obj/forkserver/python_preload.o: $(BUILD)/python-preload-path
$(BUILD)/python-preload-path: FORCE
	@mkdir -p $(BUILD)
	@echo '$(PYTHON_PRELOAD_PATH)' | cmp -s - $@ || echo '$(PYTHON_PRELOAD_PATH)' > $@
# Likewise the documents' directory, which --help names.
$(BUILD)/obj/launcher/cli_options.o: ALL_CFLAGS += -DMPS_DOCDIR='"$(DOCDIR)"'
$(BUILD)/obj/launcher/cli_options.o: $(BUILD)/doc-path
$(BUILD)/doc-path: FORCE
	@mkdir -p $(BUILD)
	@echo '$(DOCDIR)' | cmp -s - $@ || echo '$(DOCDIR)' > $@

$(BUILD)/libmpspawn.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libmpspawn.so.$(VERSION): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--no-undefined -Wl,--as-needed $(ALL_LDFLAGS) \
	  -o $@ $^ $(CJSON_LIBS)
	ln -sf libmpspawn.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/libmpspawn.so

# The embedded-CPython preload (issue 16), against Debian's python3-dev
# (python3-embed); part of `all`, and `make python-preload` alone. It
# .incbin's the worker loop, mpspawn_worker.py.
PYTHON_EMBED_CFLAGS = $(shell $(PKG_CONFIG) --cflags python3-embed 2>/dev/null)
PYTHON_EMBED_LIBS   = $(shell $(PKG_CONFIG) --libs python3-embed 2>/dev/null)
.PHONY: python-preload
python-preload: $(BUILD)/mpspawn_python.so
$(BUILD)/mpspawn_python.so: python/preload/mpspawn_python.c python/preload/mpspawn_worker.py \
  include/mpspawn.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) $(CPPFLAGS) $(CFLAGS) -fPIC \
	  -fvisibility=hidden -Iinclude $(PYTHON_EMBED_CFLAGS) -shared -Wl,--no-undefined \
	  $(ALL_LDFLAGS) -o $@ $< $(PYTHON_EMBED_LIBS) -ldl

# The server exports to the libraries it dlopens what the dynamic list names
# (mps_preload_alloc), and nothing else.
SERVER_DYNLIST := forkserver/preload_arena.dynlist
$(BUILD)/mpforkserver: $(SERVER_OBJ) $(SERVER_DYNLIST)
	$(CC) $(ALL_LDFLAGS) -Wl,--dynamic-list=$(SERVER_DYNLIST) -o $@ $(SERVER_OBJ) \
	  $(CJSON_LIBS) $(SECCOMP_LIBS)

# --as-needed: libm (in CJSON_LIBS) is loaded at every start only if used.
$(BUILD)/mpspawn: $(CLI_OBJ) $(BUILD)/libmpspawn.a
	$(CC) $(ALL_LDFLAGS) -Wl,--as-needed -o $@ $(CLI_OBJ) $(BUILD)/libmpspawn.a $(CJSON_LIBS)

# libdir and includedir relative to ${prefix} where they are under PREFIX,
# so that "pkg-config --define-variable=prefix=DESTDIR/PREFIX" finds a staged
# installation. Written again at install time with the PREFIX given then.
# mpspawn.h includes no header of cJSON's, so a static link needs only its
# library: Libs.private, not Requires.private, which would also add cJSON's
# include directory to every client's --cflags.
PC_TEXT = 'prefix=$(PREFIX)' \
  'libdir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))' \
  'includedir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))' '' \
  'Name: mpspawn' 'Description: launch processes through the mpforkserver forkserver' \
  'Version: $(VERSION)' 'Libs.private: $(CJSON_LIBS)' \
  'Libs: -L$${libdir} -lmpspawn' 'Cflags: -I$${includedir}'

$(BUILD)/mpspawn.pc: Makefile
	@mkdir -p $(BUILD)
	printf '%s\n' $(PC_TEXT) > $@

# --- tests -------------------------------------------------------------------------
$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Wno-missing-prototypes -MMD -MP -c $< -o $@

$(BUILD)/tests/check_wire: $(BUILD)/tests/check_wire.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_spec: $(BUILD)/tests/check_spec.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_idmap: $(BUILD)/tests/check_idmap.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_util: $(BUILD)/tests/check_util.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_cmdline: $(BUILD)/tests/check_cmdline.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_process: $(BUILD)/tests/check_process.o $(BUILD)/tests/testutil.o \
  $(BUILD)/tests/clientutil.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_cli: $(BUILD)/tests/check_cli.o $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_cli_run: $(BUILD)/tests/check_cli_run.o $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_pty: $(BUILD)/tests/check_pty.o $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_small: $(BUILD)/tests/check_small.o $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_terminal: $(BUILD)/tests/check_terminal.o $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_bigspec: $(BUILD)/tests/check_bigspec.o $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
# Shell scenarios run directly and through mpspawn (issue 14 item 12).
$(BUILD)/tests/check_differential: $(BUILD)/tests/check_differential.o $(BUILD)/tests/pty_expect.o \
  $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_userserver: $(BUILD)/tests/check_userserver.o $(BUILD)/tests/testutil.o \
  $(BUILD)/libmpspawn.a
# Runs the event-loop examples ($(BUILD)/examples, built by `make examples`).
$(BUILD)/tests/check_examples: $(BUILD)/tests/check_examples.o $(BUILD)/tests/testutil.o \
  $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_embedded: $(BUILD)/tests/check_embedded.o $(BUILD)/tests/testutil.o \
  $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_envref: $(BUILD)/tests/check_envref.o $(BUILD)/tests/testutil.o \
  $(BUILD)/tests/rawclient.o $(BUILD)/tests/clientutil.o $(BUILD)/libmpspawn.a
# Batched spawns (issue 18): the library's batches, and the server's answers
# to hand-made ones.
$(BUILD)/tests/check_batch: $(BUILD)/tests/check_batch.o $(BUILD)/tests/testutil.o \
  $(BUILD)/tests/rawclient.o $(BUILD)/tests/clientutil.o $(BUILD)/libmpspawn.a
# The CLI's parser is no part of the library; its unit test links it directly.
$(BUILD)/tests/check_cli_parse: $(BUILD)/tests/check_cli_parse.o $(BUILD)/obj/launcher/cli_options.o \
  $(BUILD)/obj/launcher/cli_common.o $(BUILD)/obj/launcher/cli_pty.o $(BUILD)/tests/testutil.o \
  $(BUILD)/libmpspawn.a
# One client shared by 16 threads (issue 15); also run by check-tsan.
$(BUILD)/tests/check_threads: $(BUILD)/tests/check_threads.o $(BUILD)/tests/testutil.o \
  $(BUILD)/tests/clientutil.o $(BUILD)/libmpspawn.a
# Ends read from pidfds against the records (issue 18); reads lib.h's count.
$(BUILD)/tests/check_pidfd_exit: $(BUILD)/tests/check_pidfd_exit.o $(BUILD)/tests/testutil.o \
  $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_pool: $(BUILD)/tests/check_pool.o $(BUILD)/tests/testutil.o \
  $(BUILD)/tests/clientutil.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_call: $(BUILD)/tests/check_call.o $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_jobpolicy: $(BUILD)/tests/check_jobpolicy.o $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_hardening: $(BUILD)/tests/check_hardening.o $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
# The peer's context: end to end, and peer.c's parsers linked directly.
$(BUILD)/tests/check_context: $(BUILD)/tests/check_context.o $(BUILD)/obj/forkserver/peer.o \
  $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_fairness: $(BUILD)/tests/check_fairness.o $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_isolation: $(BUILD)/tests/check_isolation.o $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
# The policy module is the server's; its unit test links it directly.
$(BUILD)/tests/check_policy: $(BUILD)/tests/check_policy.o $(BUILD)/obj/forkserver/policy.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_policy: TEST_EXTRA_LIBS = $(SECCOMP_LIBS)
# So is the child's set-up, which applies policies.
$(BUILD)/tests/check_child: $(BUILD)/tests/check_child.o $(BUILD)/obj/forkserver/child.o \
  $(BUILD)/obj/forkserver/policy.o $(BUILD)/obj/forkserver/keeper.o \
  $(BUILD)/obj/forkserver/result.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_child: TEST_EXTRA_LIBS = $(SECCOMP_LIBS)
$(BUILD)/tests/check_service: $(BUILD)/tests/check_service.o $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_config: $(BUILD)/tests/check_config.o $(BUILD)/obj/forkserver/config.o \
  $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
# mps_preload_alloc alone: the test stubs log_msg.
$(BUILD)/tests/check_arena: $(BUILD)/tests/check_arena.o $(BUILD)/obj/forkserver/preload_arena.o \
  $(BUILD)/libmpspawn.a
# The timer heap alone: the test stubs log_msg and fires its own deadlines.
$(BUILD)/tests/check_timer: $(BUILD)/tests/check_timer.o $(BUILD)/obj/forkserver/timer.o $(BUILD)/libmpspawn.a
# Each replay suite is tests/fuzz_replay.c, compiled for its target, and the
# target itself.
# (A static pattern: a plain one would also offer to make the .d files.)
$(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz_replay_%.o): $(BUILD)/tests/fuzz_replay_%.o: tests/fuzz_replay.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -DFUZZ_TARGET='"$*"' -MMD -MP -c $< -o $@
$(BUILD)/tests/fuzz_wire_replay: $(BUILD)/tests/fuzz_wire.o $(BUILD)/tests/fuzz_replay_wire.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/fuzz_cmdline_replay: $(BUILD)/tests/fuzz_cmdline.o $(BUILD)/tests/fuzz_replay_cmdline.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/fuzz_policy_replay: $(BUILD)/tests/fuzz_policy.o $(BUILD)/tests/fuzz_replay_policy.o $(BUILD)/obj/forkserver/policy.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/fuzz_policy_replay: TEST_EXTRA_LIBS = $(SECCOMP_LIBS)
$(TEST_BINS):
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(BUILD)/libmpspawn.a \
	  $(CHECK_LIBS) $(CJSON_LIBS) $(TEST_EXTRA_LIBS) -lpthread

tests: all $(TEST_BINS) $(BUILD)/tests/example $(BUILD)/tests/preload_table.so

# An example preload library (tests and benchmarks); public header only.
$(BUILD)/tests/preload_table.so: tests/preload_table.c include/mpspawn.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -fPIC -shared $(ALL_LDFLAGS) -o $@ $<

# The README's library example, compiled as written (docs/example.c is it).
$(BUILD)/tests/example: docs/example.c $(BUILD)/libmpspawn.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -Iinclude $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libmpspawn.a $(CJSON_LIBS)

# The event-loop examples (docs/examples/), built as a reader would build
# them: C11 with no feature macro from us (each file says what it needs),
# against the public header only, with libuv and libevent from pkg-config.
# Not part of `tests`: the package build runs that, and needs neither
# library. check_examples runs them (make check).
EXAMPLES       := epoll libuv libevent
EXAMPLE_BINS   := $(EXAMPLES:%=$(BUILD)/examples/%)
EXAMPLE_CFLAGS  = -std=c11 $(WARN) $(CPPFLAGS) $(CFLAGS) $(SANITIZE) -Iinclude
$(BUILD)/examples/libuv: EXAMPLE_PKG = libuv
$(BUILD)/examples/libevent: EXAMPLE_PKG = libevent_core
$(EXAMPLE_BINS): $(BUILD)/examples/%: docs/examples/%.c include/mpspawn.h $(BUILD)/libmpspawn.a
	@mkdir -p $(dir $@)
	$(CC) $(EXAMPLE_CFLAGS) $(if $(EXAMPLE_PKG),$(shell $(PKG_CONFIG) --cflags $(EXAMPLE_PKG))) \
	  $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libmpspawn.a $(CJSON_LIBS) \
	  $(if $(EXAMPLE_PKG),$(shell $(PKG_CONFIG) --libs $(EXAMPLE_PKG)))
.PHONY: examples
examples: $(EXAMPLE_BINS)

# Runs every suite; the summary line counts them all.
test: tests examples
	@sh tests/readme_example.sh $(BUILD)
	@BUILD=$(BUILD) CC='$(CC)' SANITIZE='$(SANITIZE)' \
	  sh tests/run.sh $(TESTS) check_process:nopidfd check_jobpolicy:nopidfd check_terminal:nopidfd $(SH_TESTS)

# check also runs the Python package's tests (python/python.mk); the
# sanitizer builds do not: an ASan library cannot be loaded into python3.
check: deps
	@$(MAKE) --no-print-directory test
	@$(MAKE) --no-print-directory check-python

check-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan \
	  CFLAGS='-O1 -g -fno-omit-frame-pointer' \
	  SANITIZE='-fsanitize=address,undefined -fno-sanitize-recover=all' test

# The library and the suites that share a client between threads, built
# with ThreadSanitizer in build-tsan/; the server they talk to is the
# plain build's, copied there (a forkserver's vfork-style clone is no
# program for TSan, and the races in question are the client's). Any report fails the run
# (halt_on_error, and tests/run.sh fails on any file in the log directory).
# Check's fork mode stays on: each test's threads live in the forked child.
TSAN_SUITES := check_threads check_process check_pool check_pidfd_exit check_batch
check-tsan: deps
	@$(MAKE) --no-print-directory all $(BUILD)/tests/preload_table.so
	@$(MAKE) --no-print-directory BUILD=build-tsan \
	  CFLAGS='-O1 -g -fno-omit-frame-pointer' SANITIZE='-fsanitize=thread' \
	  $(TSAN_SUITES:%=build-tsan/tests/%)
	@mkdir -p build-tsan/tsan-logs; rm -f build-tsan/tsan-logs/*
	@cp $(BUILD)/mpforkserver build-tsan/mpforkserver
	@TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 log_path=$(CURDIR)/build-tsan/tsan-logs/tsan $${TSAN_OPTIONS:-}" \
	  MPS_TEST_PRELOAD=$(CURDIR)/$(BUILD)/tests/preload_table.so \
	  BUILD=build-tsan sh tests/run.sh $(TSAN_SUITES); r=$$?; \
	  if [ -n "$$(ls -A build-tsan/tsan-logs)" ]; then \
	    cat build-tsan/tsan-logs/*; echo "check-tsan: ThreadSanitizer reports above"; exit 1; fi; \
	  exit $$r

# What a seccomp policy costs: compile, cache hit, load in a child.
$(BUILD)/tests/bench_policy: $(BUILD)/tests/bench_policy.o $(BUILD)/obj/forkserver/policy.o $(BUILD)/libmpspawn.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(BUILD)/libmpspawn.a \
	  $(CJSON_LIBS) $(SECCOMP_LIBS)

bench-policy: $(BUILD)/tests/bench_policy
	@./$(BUILD)/tests/bench_policy

# The end-to-end suites with every server under valgrind's memcheck.
check-valgrind: deps
	@command -v valgrind >/dev/null || { $(SUDO_APT) valgrind; }
	@$(MAKE) --no-print-directory tests
	@BUILD=$(BUILD) sh tests/valgrind.sh

# The full soak: 20,000 jobs from 16 clients, a quarter killed at random.
SOAK_JOBS ?= 20000
soak: tests
	@MPSPAWN_SOAK_JOBS=$(SOAK_JOBS) CK_RUN_CASE=soak BUILD=$(BUILD) sh tests/run.sh check_hardening

# --- fuzzing ---------------------------------------------------------------------------
# libFuzzer targets built by clang from the product's own sources (never
# copies) into build-fuzz/, instrumented for coverage, AddressSanitizer and
# UBSan; `make fuzz` runs each for FUZZ_SECONDS and fails on any finding,
# leaving the input that broke a target in build-fuzz/artifacts/T/ and what
# each run found in build-fuzz/corpus/T/ (scratch, not the seed corpus).
FUZZ_BUILD   := build-fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE $(WARN) -O1 -g -fno-omit-frame-pointer \
                $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(CJSON_CFLAGS)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

# The fuzz targets need clang and its fuzzer runtime (libclang-rt-dev:
# clang only recommends it); the rest of the build never does.
# Exits non-zero when they cannot be had (.ci/run then skips fuzzing).
FUZZ_PROBE := printf '%s\n' '\#include <stddef.h>' \
  'int LLVMFuzzerTestOneInput(const unsigned char *d, size_t n);' \
  'int LLVMFuzzerTestOneInput(const unsigned char *d, size_t n) { (void)d; (void)n; return 0; }' | \
  $(FUZZ_CC) -fsanitize=fuzzer,address,undefined -x c - -o /dev/null >/dev/null 2>&1
fuzz-deps: deps
	@if $(FUZZ_PROBE); then \
	  echo "fuzz-deps: $(FUZZ_CC) and libFuzzer present"; \
	else \
	  echo "fuzz-deps: no working $(FUZZ_CC) -fsanitize=fuzzer; installing clang libclang-rt-dev"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends clang libclang-rt-dev && \
	  if $(FUZZ_PROBE); then :; else \
	    echo "fuzz-deps: $(FUZZ_CC) still cannot link a fuzz target"; exit 1; \
	  fi; \
	fi

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Wno-missing-prototypes -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/fuzz_wire: $(FUZZ_BUILD)/obj/tests/fuzz_wire.o \
  $(addprefix $(FUZZ_BUILD)/obj/,launcher/wire.o launcher/transport.o launcher/say.o launcher/fdutil.o launcher/rlimits.o)
$(FUZZ_BUILD)/fuzz_cmdline: $(FUZZ_BUILD)/obj/tests/fuzz_cmdline.o \
  $(addprefix $(FUZZ_BUILD)/obj/,launcher/cmdline.o launcher/say.o)
$(FUZZ_BUILD)/fuzz_policy: $(FUZZ_BUILD)/obj/tests/fuzz_policy.o \
  $(addprefix $(FUZZ_BUILD)/obj/,forkserver/policy.o launcher/wire.o launcher/say.o launcher/fdutil.o launcher/rlimits.o)
$(FUZZ_BUILD)/fuzz_policy: FUZZ_EXTRA_LIBS = $(SECCOMP_LIBS)
$(FUZZ_BINS):
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(CJSON_LIBS) $(FUZZ_EXTRA_LIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-deps
	@$(MAKE) --no-print-directory fuzz-build
	@sh tests/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The performance figures: every row side by side in one run (a few
# minutes), then the targets as PASS/MISS. BENCH_ARGS: --json, --scale F
# (repetitions), --children N, --big-mib N, --no-python, --python PATH.
# It uses only the public header, like any client.
BENCH_ARGS ?=
$(BUILD)/tests/bench: $(BUILD)/tests/bench.o $(BUILD)/libmpspawn.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(BUILD)/libmpspawn.a $(CJSON_LIBS)

bench: all $(BUILD)/tests/bench $(BUILD)/tests/preload_table.so
	@./$(BUILD)/tests/bench --build $(BUILD) $(BENCH_ARGS)
	@$(MAKE) --no-print-directory bench-python

# The Python package against multiprocessing (python/bench/bench_python.py,
# under a minute; BENCH_PYTHON_ARGS: --json, --scale F, --rounds N), on this
# $(BUILD). Its heavy-preload rows import sympy: installed when that fails.
BENCH_PYTHON_ARGS ?=
.PHONY: bench-python
bench-python: all
	@/usr/bin/python3 -c 'import sympy' >/dev/null 2>&1 || { \
	  echo "bench-python: installing python3-sympy"; $(SUDO_APT) python3-sympy; }
	@PYTHONPATH=python MPSPAWN_LIBRARY=$(abspath $(BUILD))/$(SONAME) \
	  MPSPAWN_FORKSERVER=$(abspath $(BUILD))/mpforkserver \
	  /usr/bin/python3 python/bench/bench_python.py $(BENCH_PYTHON_ARGS)

# User-space instructions per launch in the server, under callgrind (needs
# valgrind): N exec jobs and N call jobs, and the top functions.
bench-callgrind: all $(BUILD)/tests/bench $(BUILD)/tests/preload_table.so
	@BUILD=$(BUILD) N=$${N:-2000} sh tests/bench_callgrind.sh

# Where a job's time goes, step by step (wall time per step, p50 and p90):
# a second server build with -DMPS_STEPS in $(BUILD)/steps.
bench-steps: all $(BUILD)/tests/bench $(BUILD)/tests/preload_table.so
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/steps CFLAGS="$(CFLAGS) -DMPS_STEPS" \
	  $(BUILD)/steps/mpforkserver
	@BUILD=$(BUILD) N=$${N:-1000} sh tests/bench_steps.sh

# The launch rows of this tree against BASE (a commit; default main),
# interleaved in one run: tests/bench_compare.sh.
bench-compare: all $(BUILD)/tests/bench $(BUILD)/tests/preload_table.so
	@BUILD=$(BUILD) BASE=$${BASE:-main} N=$${N:-1000} ROUNDS=$${ROUNDS:-5} sh tests/bench_compare.sh

# --- demo ------------------------------------------------------------------------------
demo: deps
	@$(MAKE) --no-print-directory all $(BUILD)/tests/example
	@echo
	@echo '== 1. The CLI: mpspawn starts (or reuses) your own forkserver and runs a job through it'
	@echo '   (the job'\''s parent is that server; it stays for the next mpspawn and exits when idle)'
	@echo '$$ ./$(BUILD)/mpspawn -- sh -c '\''echo "hello from job pid $$$$, parent $$PPID"; exit 3'\'''
	@MPSPAWN_FORKSERVER=$(BUILD)/mpforkserver ./$(BUILD)/mpspawn -- \
	  sh -c 'echo "hello from job pid $$$$, parent $$PPID"; exit 3'; \
	  echo "exit status: $$? (the job's own)"
	@echo
	@echo '== 2. The library: docs/example.c (the README example) starts, joins and kills'
	@MPSPAWN_FORKSERVER=$(BUILD)/mpforkserver ./$(BUILD)/tests/example

# --- install ---------------------------------------------------------------------------
# The man pages and units name installed paths through @BINDIR@, @LIBDIR@, @SYSCONFDIR@
# and @DOCDIR@, filled in here with the paths of this install (never with
# DESTDIR, which is only where the files are staged).
MANPAGES  := docs/mpspawn.1 docs/libmpspawn.3 docs/mpforkserver.conf.5 docs/mpforkserver.8
# What --help and the man pages point at, installed into $(DOCDIR).
DOCS      := README.md NEWS LICENSE docs/policy.md docs/batch.md docs/protocol.md \
             docs/security.md docs/example.c
SUBST      = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
                 -e 's|@LIBDIR@|$(LIBDIR)|g' \
                 -e 's|@DOCDIR@|$(DOCDIR)|g'
CONFFILE   = $(DESTDIR)$(SYSCONFDIR)/mpspawn/forkserver.conf
# bash-completion loads completions/NAME when NAME is first completed, from
# every share/ of $XDG_DATA_DIRS (/usr/local/share:/usr/share by default).
BASHCOMPDIR ?= $(or $(shell $(PKG_CONFIG) --define-variable=datadir=$(DATADIR) \
                 --variable=completionsdir bash-completion 2>/dev/null),$(DATADIR)/bash-completion/completions)

# The Python package goes where Debian's python3 finds it:
# /usr/local/lib/python3/dist-packages, /usr/lib/python3/dist-packages.
PYTHONDIR   ?= $(PREFIX)/lib/python3/dist-packages
PYTHON_PKG  := $(wildcard python/mpspawn/*.py)

install: all $(BUILD)/mpspawn_python.so
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	  $(DESTDIR)$(LIBDIR)/mpspawn $(DESTDIR)$(PYTHONDIR)/mpspawn \
	  $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(USERUNITDIR) \
	  $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(DOCDIR)/policy-examples $(DESTDIR)$(SYSCONFDIR)/mpspawn \
	  $(DESTDIR)$(BASHCOMPDIR) $(addprefix $(DESTDIR)$(MANDIR)/man,1 3 5 8)
	install -m 0755 $(BUILD)/mpforkserver $(BUILD)/mpspawn $(DESTDIR)$(BINDIR)/
	install -m 0644 $(BUILD)/libmpspawn.a $(DESTDIR)$(LIBDIR)/
	install -m 0644 $(BUILD)/libmpspawn.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libmpspawn.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libmpspawn.so
	install -m 0644 include/mpspawn.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 0644 $(BUILD)/mpspawn_python.so $(DESTDIR)$(LIBDIR)/mpspawn/
	install -m 0644 $(PYTHON_PKG) $(DESTDIR)$(PYTHONDIR)/mpspawn/
	printf '%s\n' $(PC_TEXT) > $(DESTDIR)$(PKGCONFIGDIR)/mpspawn.pc
	for p in $(MANPAGES); do \
	  $(SUBST) $$p > $(DESTDIR)$(MANDIR)/man$${p##*.}/$${p##*/} && \
	  chmod 0644 $(DESTDIR)$(MANDIR)/man$${p##*.}/$${p##*/} || exit 1; done
	install -m 0644 systemd/mpforkserver.socket $(DESTDIR)$(UNITDIR)/
	$(SUBST) systemd/mpforkserver.service.in > $(DESTDIR)$(UNITDIR)/mpforkserver.service
	install -m 0644 systemd/user/mpforkserver.socket $(DESTDIR)$(USERUNITDIR)/
	$(SUBST) systemd/user/mpforkserver.service.in > $(DESTDIR)$(USERUNITDIR)/mpforkserver.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/mpforkserver.service $(DESTDIR)$(USERUNITDIR)/mpforkserver.service
	install -m 0644 systemd/mpspawn.sysusers $(DESTDIR)$(SYSUSERSDIR)/mpspawn.conf
	install -m 0644 launcher/mpspawn.bash-completion $(DESTDIR)$(BASHCOMPDIR)/mpspawn
	ln -sf mpspawn $(DESTDIR)$(BASHCOMPDIR)/mpforkserver
	install -m 0644 systemd/forkserver.conf.sample $(DOCS) $(DESTDIR)$(DOCDIR)/
	install -m 0644 docs/policy-examples/* $(DESTDIR)$(DOCDIR)/policy-examples/
	@# An existing configuration is the administrator's: never overwritten.
	if [ -e $(CONFFILE) ]; then echo "keeping $(CONFFILE)"; \
	else install -m 0644 systemd/forkserver.conf.sample $(CONFFILE); fi

include python/python.mk

# --- Debian packages -------------------------------------------------------------------
# make deb: the packages mpspawn, libmpspawn0, libmpspawn-dev and python3-mpspawn, built by
# dpkg-buildpackage -us -uc -b from a copy of the tree in $(DEB_OUT)/src
# (so that debhelper's files stay out of the tree and the .debs land in
# $(DEB_OUT), not in the tree's parent). The build dependencies come from
# debian/control, installed with apt-get build-dep when missing.
# make deb-check: tests/deb.sh, lintian on them, then install, use, purge
# (as root: it installs them on this machine).
DEB_OUT := build-deb
deb:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	if command -v dpkg-checkbuilddeps >/dev/null && dpkg-checkbuilddeps >/dev/null 2>&1; then \
	  echo "deb: build dependencies present"; \
	else \
	  echo "deb: installing the build dependencies of debian/control"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    build-essential dpkg-dev && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -q ./ || exit 1; \
	fi
	rm -rf $(DEB_OUT) && mkdir -p $(DEB_OUT)/src
	tar --exclude=./.git --exclude='./build*' -cf - . | tar -C $(DEB_OUT)/src -xf -
	cd $(DEB_OUT)/src && dpkg-buildpackage -us -uc -b
	@ls -l $(DEB_OUT)/*.deb

deb-check: deb
	@BUILD=$(BUILD) sh tests/deb.sh $(DEB_OUT)

# make check-systemd: the packaged units under a real systemd, booted in a
# Debian 12 container (tests/systemd.sh: debootstrap, cached in
# /var/cache/mpspawn-systemd-test, then systemd-nspawn --boot --ephemeral).
# Uses the packages in $(DEB_OUT), built first when there are none: run
# "make deb" after changing the tree. As root.
check-systemd:
	@command -v debootstrap >/dev/null && command -v systemd-nspawn >/dev/null || \
	  { $(SUDO_APT) debootstrap systemd-container; }
	@ls $(DEB_OUT)/mpspawn_*.deb >/dev/null 2>&1 || $(MAKE) --no-print-directory deb
	@ls -l $(DEB_OUT)/mpspawn_*.deb $(DEB_OUT)/libmpspawn0_*.deb
	@sh tests/systemd.sh $(DEB_OUT)

# The configuration goes only if it is still the sample: edits are kept.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/mpforkserver $(DESTDIR)$(BINDIR)/mpspawn \
	  $(DESTDIR)$(LIBDIR)/libmpspawn.a $(DESTDIR)$(LIBDIR)/libmpspawn.so \
	  $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libmpspawn.so.$(VERSION) \
	  $(DESTDIR)$(INCLUDEDIR)/mpspawn.h $(DESTDIR)$(PKGCONFIGDIR)/mpspawn.pc \
	  $(DESTDIR)$(LIBDIR)/mpspawn/mpspawn_python.so \
	  $(addprefix $(DESTDIR)$(PYTHONDIR)/mpspawn/,$(notdir $(PYTHON_PKG))) \
	  $(addprefix $(DESTDIR)$(MANDIR)/man,$(foreach p,$(MANPAGES),$(subst .,,$(suffix $(p)))/$(notdir $(p)))) \
	  $(DESTDIR)$(UNITDIR)/mpforkserver.socket $(DESTDIR)$(UNITDIR)/mpforkserver.service \
	  $(DESTDIR)$(USERUNITDIR)/mpforkserver.socket $(DESTDIR)$(USERUNITDIR)/mpforkserver.service \
	  $(DESTDIR)$(SYSUSERSDIR)/mpspawn.conf $(DESTDIR)$(DOCDIR)/forkserver.conf.sample \
	  $(DESTDIR)$(BASHCOMPDIR)/mpspawn $(DESTDIR)$(BASHCOMPDIR)/mpforkserver \
	  $(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOCS))) \
	  $(addprefix $(DESTDIR)$(DOCDIR)/policy-examples/,$(notdir $(wildcard docs/policy-examples/*)))
	if cmp -s systemd/forkserver.conf.sample $(CONFFILE); then rm -f $(CONFFILE); \
	elif [ -e $(CONFFILE) ]; then echo "keeping $(CONFFILE) (changed)"; fi
	@# What python3 compiled from the installed package when it was imported.
	rm -rf $(DESTDIR)$(PYTHONDIR)/mpspawn/__pycache__
	-rmdir $(DESTDIR)$(DOCDIR)/policy-examples $(DESTDIR)$(DOCDIR) \
	  $(DESTDIR)$(SYSCONFDIR)/mpspawn $(DESTDIR)$(LIBDIR)/mpspawn \
	  $(DESTDIR)$(PYTHONDIR)/mpspawn 2>/dev/null

clean:
	rm -rf build build-asan build-fuzz build-deb
	-git worktree remove --force build-base 2>/dev/null; rm -rf build-base

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
ifneq ($(filter fuzz fuzz-build build-fuzz/%,$(MAKECMDGOALS)),)
-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
endif
