# mpspawn: build, test, install.
#
#   make            build mpforkserver, mpspawn, libmpspawn.{a,so}
#   make demo       install missing build dependencies, build, run a real job
#   make check      install missing build dependencies, build, run every test
#   make check-asan the whole suite under AddressSanitizer + UBSan
#   make bench      launches through the server against fork/posix_spawn,
#                   Python's multiprocessing, and the server's memory; a
#                   markdown table (BENCH_ARGS=--json for JSON). Not a test.
#   make bench-callgrind  instructions per launch in the server (valgrind)
#   make bench-policy  what a seccomp policy costs (compile, cache hit, load)
#   make install    PREFIX=/usr/local DESTDIR=
#
# Every output goes under $(BUILD) (build/ by default; build-asan/ for the
# sanitizer build), so the two never mix.

VERSION      := 0.1.0
SOVERSION    := 0
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR      ?=

BUILD        ?= build
CC           ?= cc
PKG_CONFIG   ?= pkg-config

# Debian packages that provide what we build against.
DEB_PACKAGES := build-essential pkg-config libseccomp-dev libcjson-dev check libsystemd-dev
PKG_MODULES  := libcjson libseccomp check libsystemd

CJSON_CFLAGS    = $(shell $(PKG_CONFIG) --cflags libcjson 2>/dev/null)
CJSON_LIBS      = $(shell $(PKG_CONFIG) --libs libcjson 2>/dev/null) -lm
SECCOMP_LIBS    = $(shell $(PKG_CONFIG) --libs libseccomp 2>/dev/null)
SYSTEMD_CFLAGS  = $(shell $(PKG_CONFIG) --cflags libsystemd 2>/dev/null)
SYSTEMD_LIBS    = $(shell $(PKG_CONFIG) --libs libsystemd 2>/dev/null)
CHECK_CFLAGS    = $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS      = $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral \
            -Wstrict-prototypes -Wmissing-prototypes -Wvla
CFLAGS   ?= -O2 -g
SANITIZE ?=
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SANITIZE) \
             -DMPS_VERSION_STRING='"$(VERSION)"' \
             -DMPS_FORKSERVER_PATH='"$(BINDIR)/mpforkserver"' \
             $(CJSON_CFLAGS)
LIB_CFLAGS = $(ALL_CFLAGS) -fPIC -fvisibility=hidden -DMPS_BUILDING_LIBRARY
ALL_LDFLAGS = $(LDFLAGS) $(SANITIZE)

# The wire codec and helpers are one set of files used by both sides.
COMMON_SRC := launcher/wire.c launcher/fdutil.c launcher/idmap.c launcher/rlimits.c
LIB_SRC    := $(COMMON_SRC) launcher/client.c launcher/spec.c launcher/process.c \
              launcher/jobs.c launcher/pool.c launcher/cmdline.c launcher/share.c
SERVER_SRC := forkserver/main.c forkserver/loop.c forkserver/listen.c \
              forkserver/client.c forkserver/job.c forkserver/child.c \
              forkserver/timer.c forkserver/log.c forkserver/retain.c \
              forkserver/query.c forkserver/preload.c forkserver/prefork.c \
              forkserver/policy.c \
              $(COMMON_SRC)
CLI_SRC    := launcher/mpspawn.c launcher/cli.c launcher/cli_batch.c launcher/cli_jobs.c

LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/lib/%.o)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ    := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)

TESTS      := check_wire check_idmap check_cmdline check_policy check_process check_pool check_call check_jobpolicy check_cli
TEST_BINS  := $(TESTS:%=$(BUILD)/tests/%)

SONAME     := libmpspawn.so.$(SOVERSION)
PROGRAMS   := $(BUILD)/mpforkserver $(BUILD)/mpspawn
LIBS       := $(BUILD)/libmpspawn.a $(BUILD)/libmpspawn.so.$(VERSION)

.PHONY: all deps demo check check-asan test tests install uninstall clean \
        bench bench-callgrind bench-policy
.DEFAULT_GOAL := all

all: $(PROGRAMS) $(LIBS) $(BUILD)/mpspawn.pc

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

$(BUILD)/libmpspawn.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libmpspawn.so.$(VERSION): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--no-undefined $(ALL_LDFLAGS) \
	  -o $@ $^ $(CJSON_LIBS)
	ln -sf libmpspawn.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/libmpspawn.so

$(BUILD)/mpforkserver: $(SERVER_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CJSON_LIBS) $(SECCOMP_LIBS) $(SYSTEMD_LIBS)

$(BUILD)/mpspawn: $(CLI_OBJ) $(BUILD)/libmpspawn.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libmpspawn.a $(CJSON_LIBS)

$(BUILD)/mpspawn.pc: Makefile
	@mkdir -p $(BUILD)
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCLUDEDIR)' '' \
	  'Name: mpspawn' 'Description: launch processes through the mpforkserver forkserver' \
	  'Version: $(VERSION)' 'Requires.private: libcjson' 'Libs.private: -lm' \
	  'Libs: -L$${libdir} -lmpspawn' 'Cflags: -I$${includedir}' > $@

# --- tests -------------------------------------------------------------------------
$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Wno-missing-prototypes -MMD -MP -c $< -o $@

$(BUILD)/tests/check_wire: $(BUILD)/tests/check_wire.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_idmap: $(BUILD)/tests/check_idmap.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_cmdline: $(BUILD)/tests/check_cmdline.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_process: $(BUILD)/tests/check_process.o $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_cli: $(BUILD)/tests/check_cli.o $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_pool: $(BUILD)/tests/check_pool.o $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_call: $(BUILD)/tests/check_call.o $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_jobpolicy: $(BUILD)/tests/check_jobpolicy.o $(BUILD)/tests/testutil.o $(BUILD)/libmpspawn.a
# The policy module is the server's; its unit test links it directly.
$(BUILD)/tests/check_policy: $(BUILD)/tests/check_policy.o $(BUILD)/obj/forkserver/policy.o $(BUILD)/libmpspawn.a
$(BUILD)/tests/check_policy: TEST_EXTRA_LIBS = $(SECCOMP_LIBS)
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

# Runs every suite; the summary line counts them all.
test: tests
	@sh tests/readme_example.sh $(BUILD)
	@BUILD=$(BUILD) sh tests/run.sh $(TESTS) check_process:nopidfd

check: deps
	@$(MAKE) --no-print-directory test

check-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan \
	  CFLAGS='-O1 -g -fno-omit-frame-pointer' \
	  SANITIZE='-fsanitize=address,undefined -fno-sanitize-recover=all' test

# What a seccomp policy costs: compile, cache hit, load in a child.
$(BUILD)/tests/bench_policy: $(BUILD)/tests/bench_policy.o $(BUILD)/obj/forkserver/policy.o $(BUILD)/libmpspawn.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(BUILD)/libmpspawn.a \
	  $(CJSON_LIBS) $(SECCOMP_LIBS)

bench-policy: $(BUILD)/tests/bench_policy
	@./$(BUILD)/tests/bench_policy

# The performance figures: every row side by side in one run (a few
# minutes), then the targets as PASS/MISS. BENCH_ARGS: --json, --scale F
# (repetitions), --children N, --big-mib N, --no-python, --python PATH.
# It uses only the public header, like any client.
BENCH_ARGS ?=
$(BUILD)/tests/bench: $(BUILD)/tests/bench.o $(BUILD)/libmpspawn.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(BUILD)/libmpspawn.a $(CJSON_LIBS)

bench: all $(BUILD)/tests/bench $(BUILD)/tests/preload_table.so
	@./$(BUILD)/tests/bench --build $(BUILD) $(BENCH_ARGS)

# User-space instructions per launch in the server, under callgrind (needs
# valgrind): N exec jobs and N call jobs, and the top functions.
bench-callgrind: all $(BUILD)/tests/bench $(BUILD)/tests/preload_table.so
	@BUILD=$(BUILD) N=$${N:-2000} sh tests/bench_callgrind.sh

# --- demo ------------------------------------------------------------------------------
demo: deps
	@$(MAKE) --no-print-directory all $(BUILD)/tests/example
	@echo
	@echo '== 1. The CLI: mpspawn starts a private forkserver and runs a job through it'
	@echo '$$ ./$(BUILD)/mpspawn -- sh -c '\''echo "hello from job pid $$$$, parent $$PPID"; exit 3'\'''
	@MPSPAWN_FORKSERVER=$(BUILD)/mpforkserver ./$(BUILD)/mpspawn -- \
	  sh -c 'echo "hello from job pid $$$$, parent $$PPID"; exit 3'; \
	  echo "exit status: $$? (the job's own)"
	@echo
	@echo '== 2. The library: docs/example.c (the README example) starts, joins and kills'
	@MPSPAWN_FORKSERVER=$(BUILD)/mpforkserver ./$(BUILD)/tests/example

# --- install ---------------------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	  $(DESTDIR)$(PKGCONFIGDIR)
	install -m 0755 $(BUILD)/mpforkserver $(BUILD)/mpspawn $(DESTDIR)$(BINDIR)/
	install -m 0644 $(BUILD)/libmpspawn.a $(DESTDIR)$(LIBDIR)/
	install -m 0755 $(BUILD)/libmpspawn.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libmpspawn.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libmpspawn.so
	install -m 0644 include/mpspawn.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 0644 $(BUILD)/mpspawn.pc $(DESTDIR)$(PKGCONFIGDIR)/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/mpforkserver $(DESTDIR)$(BINDIR)/mpspawn \
	  $(DESTDIR)$(LIBDIR)/libmpspawn.a $(DESTDIR)$(LIBDIR)/libmpspawn.so* \
	  $(DESTDIR)$(INCLUDEDIR)/mpspawn.h $(DESTDIR)$(PKGCONFIGDIR)/mpspawn.pc

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
