/* SPDX-License-Identifier: MIT */
/*
 * cli_options.h: the mpspawn command line as data. mps__cli_parse() turns
 * argv into a struct mps__cli_options (what to do, and with which options)
 * or into an error message, and does nothing else: it prints nothing, never
 * exits and talks to no server, so that tests/check_cli_parse.c can call it.
 * Running what it describes is cli.c's.
 */
#ifndef MPS_CLI_OPTIONS_H
#define MPS_CLI_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "../include/mpspawn.h"
#include "cli_pty.h"

enum mps__cli_mode {
        MPS__CLI_RUN,     /* one job: PROGRAM ARG..., or --call ENTRY */
        MPS__CLI_BATCH,   /* -j N: one job per line of stdin */
        MPS__CLI_HELP,    /* -h: mps__cli_usage on stdout, exit 0 */
        MPS__CLI_VERSION, /* -V */
        MPS__CLI_SERVER,  /* `mpspawn server ...`: exec mpforkserver */
        MPS__CLI_PS,
        MPS__CLI_KILL,
        MPS__CLI_WAIT,
        MPS__CLI_STATS,
        MPS__CLI_SUBCOMMAND_HELP, /* `mpspawn ps -h` and the like */
};

/* Every string below points into the argv given to mps__cli_parse(), which
 * must outlive the struct. */
struct mps__cli_options {
        enum mps__cli_mode mode;
        const char *socket; /* -s; NULL: the library's default choice */
        /* RUN and BATCH: the job as the options describe it (environment,
         * limits, policy, cwd, name, timeout, daemon or detached), with no
         * program yet: the runner sets it after connecting, as it always
         * has. Owned; NULL in the other modes. */
        mps_spec *spec;
        /* RUN: PROGRAM ARG... (none with --call); BATCH: the words that go
         * before each line's (may be none); SERVER: the server's argv,
         * "server" first. NULL-terminated, as argv is. */
        char **command;
        int ncommand;
        const char *subcommand; /* PS..SUBCOMMAND_HELP: "ps", "kill", ... */
        const char *cwd, *name;  /* -C, --name (also set in spec) */
        const char *call, *args; /* --call ENTRY, --args JSON */
        double timeout;          /* --timeout; 0: none */
        double kill_after;       /* --kill-after; -1: not given */
        unsigned jobs;           /* -j N; 0 outside BATCH */
        bool clear_env, new_session, detach, halt_on_failure;
        bool json;               /* --json of the run, or of ps/wait/stats */
        uint64_t id;             /* KILL and WAIT: the job */
        int signal;              /* KILL: the signal (default SIGTERM) */
        /* The fds the job gets besides 0-2 (cli_fds.c): by default every
         * one not close-on-exec; with fds_explicit (--close-fds,
         * --pass-fd, --preserve-fds) only those in pass_fd_set, one bit
         * per fd 0..1023, and 3..3+preserve_fds-1. */
        bool fds_explicit;
        uint32_t pass_fd_set[32];
        unsigned preserve_fds;
        /* timeout(1) compatibility (issue 14, item 9). */
        int timeout_signal;      /* --signal: sent at the timeout; 0: SIGTERM */
        bool preserve_status;    /* --preserve-status */
        /* JSON records (item 8): --json-fd FD, where they go; -1: stderr.
         * The job never gets this fd (the fd-passing code excludes it). */
        int json_fd;
        /* Batch input (item 7). */
        bool delimited;          /* -0 or -d: items end at `delim`, literal */
        char delim;              /* -0: '\0'; -d DELIM; '\n' otherwise */
        const char *replace;     /* -I REPLACE, -i: {}; NULL: none */
        bool progress;           /* --progress */
        enum mps__pty_mode pty;  /* RUN: --pty, --no-pty, else AUTO */
};

/* Why the command line was refused. */
struct mps__cli_error {
        char *message; /* malloc()ed, without "mpspawn: "; NULL: out of memory */
        bool usage;    /* a usage error: "Try 'mpspawn --help'" goes after it */
};

/* Parses `mpspawn argv...` (argv[0] is the program's name). Returns 0 with
 * *ret filled (release it with mps__cli_options_done), or -EINVAL with
 * *ret_error filled (release it with mps__cli_error_done); *ret is
 * untouched on failure, *ret_error on success. Every failure means exit
 * status MPS_EXIT_LAUNCHER. The one thing it reads is --seccomp's file,
 * whose errors are reported in order with the other options'. Uses getopt's
 * globals, so it is not reentrant. */
int mps__cli_parse(int argc, char **argv, struct mps__cli_options *ret,
                   struct mps__cli_error *ret_error);

/* Frees what the options own (the spec); the strings are argv's. */
void mps__cli_options_done(struct mps__cli_options *o);

void mps__cli_error_done(struct mps__cli_error *e);

/* A signal by name (TERM, SIGTERM, term) or number (0 included); -1 if
 * neither. */
int mps__cli_parse_signal(const char *s);

/* The texts of `mpspawn --help` and `mpspawn SUBCOMMAND --help`. */
extern const char mps__cli_usage[];
extern const char mps__cli_subcommand_usage[];

#endif /* MPS_CLI_OPTIONS_H */
