/* SPDX-License-Identifier: MIT */
/*
 * cli_options.c: mpspawn's command line, from argv to a struct
 * mps__cli_options (see cli_options.h): the option table, the help text that
 * documents it, the checks of each option and of their combinations, and
 * the subcommands' arguments. Nothing here prints or exits: a refusal is a
 * message in a struct mps__cli_error, which only main's side prints.
 */
#include "cli_options.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cmdline.h"
#include "number.h"
#include "rlimits.h"

/* Where `make install` puts the documents --help names. */
#ifndef MPS_DOCDIR
#define MPS_DOCDIR "/usr/local/share/doc/mpspawn"
#endif

const char mps__cli_usage[] =
        "Usage: mpspawn [OPTIONS] [--] PROGRAM [ARG...]\n"
        "       mpspawn [OPTIONS] --call ENTRY [--args JSON]\n"
        "       mpspawn [OPTIONS] -j N [PROGRAM [ARG...]] < COMMANDS\n"
        "       mpspawn ps|kill|wait|stats|server ...\n"
        "\n"
        "Runs PROGRAM through a forkserver with this process's stdin, stdout and\n"
        "stderr, waits for it, and exits with its status. Signals INT, TERM, HUP,\n"
        "QUIT, USR1, USR2 and WINCH received by mpspawn are forwarded to the job;\n"
        "if mpspawn itself is killed, the forkserver ends the job (SIGTERM, then\n"
        "SIGKILL), unless it was started with --detach.\n"
        "\n"
        "Options:\n"
        "  -s, --socket PATH      the forkserver's socket. Default: $MPSPAWN_SOCKET,\n"
        "                         else /run/mpspawn/forkserver.sock or\n"
        "                         $XDG_RUNTIME_DIR/mpspawn.sock if a server answers\n"
        "                         there, else a private server for this run\n"
        "  -C, --cwd DIR          run in DIR (default: the current directory)\n"
        "  -e, --env NAME=VALUE   set NAME in the job's environment (repeatable)\n"
        "  -u, --unset NAME       remove NAME from the job's environment (repeatable)\n"
        "      --clear-env        start from an empty environment (-e still applies)\n"
        "      --name NAME        a name for the job, shown by `mpspawn ps`\n"
        "      --new-session      run the job in a new session (setsid)\n"
        "      --timeout DURATION  the server sends SIGTERM (or --signal's) after\n"
        "                         DURATION, then SIGKILL after --kill-after. As in\n"
        "                         timeout(1): seconds (fractions allowed) or a number\n"
        "                         with s, m, h or d: 2.5, 1.5s, 2m, 0.5h, 1d\n"
        "      --kill-after DURATION  time from the timeout's signal to SIGKILL\n"
        "                         (default 5s)\n"
        "      --signal SIG       the signal sent at the timeout (default TERM)\n"
        "      --preserve-status  after a timeout, exit with the job's own status\n"
        "                         (N, or 128+N after signal N) instead of 124\n"
        "      --rlimit RES=SOFT[:HARD]  set a resource limit (repeatable): RES is\n"
        "                         any RLIMIT_* name in any case (nofile, CORE,\n"
        "                         RLIMIT_AS...); values are numbers or 'unlimited';\n"
        "                         without :HARD the hard limit is left as it is\n"
        "      --seccomp FILE     load the seccomp policy FILE in the job, last before\n"
        "                         exec (format: policy.md, below); a bad policy is\n"
        "                         reported with its file, line and word, and nothing\n"
        "                         is started\n"
        "      --nice N           the job's nice value (-20..19)\n"
        "      --umask MODE       the job's umask (octal, e.g. 027)\n"
        "      --no-new-privs     the job cannot gain privileges through exec\n"
        "      --pdeathsig SIG    the signal the job gets if the forkserver dies\n"
        "      --kill-tree        signals reach the job's whole process group, and\n"
        "                         what it leaves in it is killed when it ends\n"
        "      --close-fds        pass the job only fds 0-2 (default: every fd of\n"
        "                         mpspawn's caller not marked close-on-exec, at the\n"
        "                         same number, as exec does; up to fd 1023)\n"
        "      --pass-fd N        pass fd N too (repeatable); only 0-2 and those\n"
        "      --preserve-fds N   pass fds 3 to 3+N-1 too; only 0-2 and those\n"
        "      --detach           start, print the job's ID and PID, and exit 0 at\n"
        "                         once; the job runs on (use a shared server to\n"
        "                         wait for or kill it later)\n"
        "      --pty              give the job a pseudo-terminal of its own even when\n"
        "                         neither stdin nor stdout is a terminal: all of its\n"
        "                         fds 0-2 are the pty, relayed to mpspawn's stdin and\n"
        "                         stdout (as ssh -tt)\n"
        "      --no-pty           no pseudo-terminal: the job shares mpspawn's fds\n"
        "                         0-2 as they are, and has no controlling terminal\n"
        "      --json             print the exit record as one JSON line on stderr\n"
        "                         (with --detach: print {\"id\",\"pid\"} on stdout)\n"
        "      --json-fd FD       write the JSON records to FD instead of stderr\n"
        "                         (implies --json; the job does not get FD)\n"
        "      --call ENTRY       run entry point ENTRY of a library the server\n"
        "                         preloaded (mpforkserver --preload), in a\n"
        "                         copy-on-write child, instead of a PROGRAM; its\n"
        "                         return value is the exit status\n"
        "      --args JSON        the arguments of --call, as JSON text\n"
        "  -j, --jobs N           batch mode: read one command per line from stdin\n"
        "                         and run N at a time (0: one per CPU), like\n"
        "                         xargs -P N. Quoting as in\n"
        "                         sh without expansion: '...', \"...\", \\ (see\n"
        "                         batch.md, below); blank lines and # comments are\n"
        "                         skipped; PROGRAM ARG..., if given, go before each\n"
        "                         line's words. Jobs get /dev/null as stdin\n"
        "      --halt-on-failure  batch mode: start nothing more after a failure\n"
        "      --keep-going       batch mode: run every line whatever fails (default)\n"
        "  -0, --null             batch mode: items end with a NUL byte (xargs -0) and\n"
        "                         are taken literally: each is one argument after\n"
        "                         PROGRAM ARG...\n"
        "  -d, --delimiter DELIM  the same, with items ending at DELIM: a character\n"
        "                         or \\n, \\t, \\0, \\\\, \\NNN (octal), \\xHH, as xargs -d\n"
        "  -I REPLACE             batch mode: each item (a line without its leading\n"
        "                         blanks, quotes removed; or a -0/-d item) replaces\n"
        "                         REPLACE wherever it occurs in PROGRAM ARG...\n"
        "  -i, --replace[=R]      -I R; R is {} when not given (as xargs -i)\n"
        "      --progress         batch mode: a status line on stderr when it is a\n"
        "                         terminal: done, running, failed, rate\n"
        "  -h, --help             show this help and exit\n"
        "  -V, --version          show the version and exit\n"
        "\n"
        "When stdin or stdout is a terminal (and without --no-pty), the job gets a\n"
        "pseudo-terminal of its own as each of its fds 0-2 that is a terminal, and\n"
        "as its controlling terminal in a session of its own; mpspawn relays\n"
        "between it and the terminal (raw mode meanwhile), passes window size\n"
        "changes on, and stops and continues with the job (Ctrl-Z, fg, bg). A job\n"
        "killed by signal N kills mpspawn with N (no core dump of its own).\n"
        "Signals ignored when mpspawn starts stay ignored and are not forwarded.\n"
        "\n"
        "A PROGRAM without '/' is searched for in the job's PATH. To run a program\n"
        "named like a subcommand, put -- before it.\n"
        "\n"
        "Subcommands (these need a shared server: --socket, $MPSPAWN_SOCKET or a\n"
        "system or user server; they see only the caller's own jobs):\n"
        "  ps [--json]            list jobs: ID, PID, STATE, TIME, NAME, COMMAND\n"
        "  kill ID [SIGNAL]       send SIGNAL (name or number; default TERM)\n"
        "  wait [--json] ID       wait for job ID and exit with its status\n"
        "  stats [--json]         the server's counters and spawn latency\n"
        "  server [OPTIONS]       run a forkserver in the foreground (mpforkserver)\n"
        "\n"
        "Exit status:\n"
        "  N      PROGRAM exited with N\n"
        "  128+N  PROGRAM was killed by signal N; batch mode stopped by signal N\n"
        "  124    --timeout expired (137 if SIGKILL was needed, as timeout(1));\n"
        "         with --preserve-status, the job's own status\n"
        "  125    mpspawn itself failed (bad option, no forkserver, bad --cwd)\n"
        "  126    PROGRAM was found but could not be executed\n"
        "  127    PROGRAM was not found; `wait` of an unknown ID\n"
        "  123    batch mode: some job failed (non-zero, signal, not started)\n"
        "  1      `kill` of an unknown ID\n"
        "\n"
        "Environment:\n"
        "  MPSPAWN_SOCKET      the socket to use when --socket is not given\n"
        "  MPSPAWN_FORKSERVER  the mpforkserver binary for a private server\n"
        "  MPSPAWN_DEBUG       if set, a private server logs to mpspawn's stderr\n"
        "  MPSPAWN_USER_SERVER 0: no per-user server, a private one for each run\n"
        "  MPSPAWN_USER_SERVER_IDLE  seconds the per-user server stays up without\n"
        "                      clients, jobs or exits to collect (default 600)\n"
        "  MPSPAWN_TMPDIR      where the per-user server's directory is made when\n"
        "                      XDG_RUNTIME_DIR is unset (default /tmp)\n"
        "\n"
        "With no --socket, no $MPSPAWN_SOCKET and no system or user server\n"
        "answering, mpspawn starts the user's own server on\n"
        "$XDG_RUNTIME_DIR/mpspawn.sock (else /tmp/mpspawn-UID/mpspawn.sock), which\n"
        "later runs and the subcommands find; it exits once idle. See mpspawn(1).\n"
        "\n"
        "Documents: policy.md, batch.md, protocol.md and security.md in\n"
        MPS_DOCDIR "/.\n";

const char mps__cli_subcommand_usage[] =
        "Usage: mpspawn [-s SOCKET] ps [--json] | kill ID [SIGNAL] | "
        "wait [--json] ID | stats [--json]\nSee 'mpspawn --help'.\n";

/* Sets *e to the message and returns -EINVAL, so that a check reads
 * `return refuse(...)`. */
__attribute__((format(printf, 3, 4))) static int refuse(struct mps__cli_error *e, bool usage,
                                                        const char *fmt, ...) {
        va_list ap;
        char *message;
        va_start(ap, fmt);
        if (vasprintf(&message, fmt, ap) < 0)
                message = NULL;
        va_end(ap);
        *e = (struct mps__cli_error){.message = message, .usage = usage};
        return -EINVAL;
}

void mps__cli_error_done(struct mps__cli_error *e) {
        free(e->message);
        e->message = NULL;
}

void mps__cli_options_done(struct mps__cli_options *o) {
        mps_spec_free(o->spec);
        o->spec = NULL;
}

int mps__cli_parse_signal(const char *s) {
        long long n;
        int r = mps__parse_signed(s, 0, NSIG - 1, &n);
        if (r == 0)
                return (int)n;
        if (r == -ERANGE)
                return -1; /* a number, but no signal's */
        if (strncasecmp(s, "SIG", 3) == 0)
                s += 3;
        for (int sig = 1; sig < NSIG; sig++) {
                const char *abbrev = sigabbrev_np(sig);
                if (abbrev && strcasecmp(abbrev, s) == 0)
                        return sig;
        }
        return -1;
}

/* The subcommands, by the word that names them. "server" is not among
 * them: it is recognised only as the first word (see mps__cli_parse). */
static const struct {
        const char *word;
        enum mps__cli_mode mode;
} subcommands[] = {
        {"ps", MPS__CLI_PS},
        {"kill", MPS__CLI_KILL},
        {"wait", MPS__CLI_WAIT},
        {"stats", MPS__CLI_STATS},
};

static bool subcommand_mode(const char *s, enum mps__cli_mode *ret) {
        for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
                if (strcmp(s, subcommands[i].word) == 0) {
                        *ret = subcommands[i].mode;
                        return true;
                }
        return false;
}

/* --- the values of options ------------------------------------------------ */

/* A duration as GNU timeout(1) takes it: a non-negative decimal number
 * (fractions allowed) and at most one suffix, s (seconds, as a bare
 * number), m, h or d; in seconds, up to what the server takes (1e7). */
static int parse_seconds(const char *s, double *ret) {
        static const struct {
                char suffix;
                double scale;
        } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
        char num[64];
        size_t len = strlen(s);
        double scale = 1, v;
        if (len == 0 || len >= sizeof(num))
                return -EINVAL;
        memcpy(num, s, len + 1);
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
                if (num[len - 1] == units[i].suffix) {
                        num[len - 1] = '\0';
                        scale = units[i].scale;
                        break;
                }
        int r = mps__parse_double(num, 0, 1e7, &v);
        if (r < 0)
                return r;
        if (v * scale > 1e7)
                return -ERANGE;
        *ret = v * scale;
        return 0;
}

/* A job id: the server numbers jobs from 1. */
static int parse_id(const char *s, uint64_t *ret) {
        unsigned long long v;
        int r = mps__parse_unsigned(s, 10, 1, UINT64_MAX, &v);
        if (r == 0)
                *ret = v;
        return r;
}

/* An rlimit value: a number below MPS_RLIM_KEEP (which, like
 * RLIM_INFINITY, has a meaning of its own), or 'unlimited'/'infinity'. */
static int parse_limit_value(const char *s, rlim_t *ret) {
        unsigned long long v;
        if (strcasecmp(s, "unlimited") == 0 || strcasecmp(s, "infinity") == 0) {
                *ret = RLIM_INFINITY;
                return 0;
        }
        int r = mps__parse_unsigned(s, 10, 0, (unsigned long long)MPS_RLIM_KEEP - 1, &v);
        if (r == 0)
                *ret = (rlim_t)v;
        return r;
}

/* RES=SOFT[:HARD] onto spec. */
static int apply_rlimit(mps_spec *spec, const char *arg) {
        char buf[128];
        if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf))
                return -EINVAL;
        char *eq = strchr(buf, '=');
        if (!eq)
                return -EINVAL;
        *eq = '\0';
        int res = mps__rlimit_from_name(buf);
        if (res < 0)
                return -EINVAL;
        char *colon = strchr(eq + 1, ':');
        if (colon)
                *colon = '\0';
        rlim_t soft, hard = MPS_RLIM_KEEP;
        if (parse_limit_value(eq + 1, &soft) < 0 ||
            (colon && parse_limit_value(colon + 1, &hard) < 0))
                return -EINVAL;
        return mps_spec_set_rlimit(spec, res, soft, hard);
}

/* NAME=VALUE (with its '=') onto spec. */
static int apply_env(mps_spec *spec, const char *arg) {
        const char *eq = strchr(arg, '=');
        char *name = strndup(arg, (size_t)(eq - arg));
        if (!name)
                return -ENOMEM;
        int r = mps_spec_env_set(spec, name, eq + 1);
        free(name);
        return r;
}

/* --- the options ------------------------------------------------------------ */

enum {
        OPT_CLEAR_ENV = 256, OPT_NAME, OPT_NEW_SESSION, OPT_TIMEOUT, OPT_KILL_AFTER,
        OPT_RLIMIT, OPT_DETACH, OPT_JSON, OPT_HALT, OPT_KEEP, OPT_CALL, OPT_ARGS,
        OPT_SECCOMP, OPT_NICE, OPT_UMASK, OPT_NNP, OPT_PDEATHSIG, OPT_KILL_TREE,
        /* issue 14, items 7-9: batch input, JSON records, timeout(1). */
        OPT_PROGRESS, OPT_JSON_FD, OPT_SIGNAL, OPT_PRESERVE_STATUS,
};

/* The fd options (cli_fds.c), numbered apart from the others. */
enum { OPT_CLOSE_FDS = 400, OPT_PASS_FD, OPT_PRESERVE_FDS };
/* The job's terminal (cli_pty.c), numbered apart so that other options
 * can be added above without renumbering these. */
enum { OPT_PTY = 0x1400, OPT_NO_PTY };

/* '+': stop at the first non-option, so that PROGRAM's own options stay
 * its own without needing "--". */
static const char shortopts[] = "+s:C:e:u:j:hV"
                                "0d:I:i::"; /* batch input, as xargs */

static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"cwd", required_argument, NULL, 'C'},
        {"env", required_argument, NULL, 'e'},
        {"unset", required_argument, NULL, 'u'},
        {"clear-env", no_argument, NULL, OPT_CLEAR_ENV},
        {"name", required_argument, NULL, OPT_NAME},
        {"new-session", no_argument, NULL, OPT_NEW_SESSION},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"kill-after", required_argument, NULL, OPT_KILL_AFTER},
        {"rlimit", required_argument, NULL, OPT_RLIMIT},
        {"detach", no_argument, NULL, OPT_DETACH},
        {"json", no_argument, NULL, OPT_JSON},
        {"jobs", required_argument, NULL, 'j'},
        {"call", required_argument, NULL, OPT_CALL},
        {"seccomp", required_argument, NULL, OPT_SECCOMP},
        {"nice", required_argument, NULL, OPT_NICE},
        {"umask", required_argument, NULL, OPT_UMASK},
        {"no-new-privs", no_argument, NULL, OPT_NNP},
        {"pdeathsig", required_argument, NULL, OPT_PDEATHSIG},
        {"kill-tree", no_argument, NULL, OPT_KILL_TREE},
        {"close-fds", no_argument, NULL, OPT_CLOSE_FDS},
        {"pass-fd", required_argument, NULL, OPT_PASS_FD},
        {"preserve-fds", required_argument, NULL, OPT_PRESERVE_FDS},
        /* The job's terminal. */
        {"pty", no_argument, NULL, OPT_PTY},
        {"no-pty", no_argument, NULL, OPT_NO_PTY},
        {"args", required_argument, NULL, OPT_ARGS},
        {"halt-on-failure", no_argument, NULL, OPT_HALT},
        {"keep-going", no_argument, NULL, OPT_KEEP},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        /* batch input, JSON records, timeout(1) (issue 14, items 7-9) */
        {"null", no_argument, NULL, '0'},
        {"delimiter", required_argument, NULL, 'd'},
        {"replace", optional_argument, NULL, 'i'},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"json-fd", required_argument, NULL, OPT_JSON_FD},
        {"signal", required_argument, NULL, OPT_SIGNAL},
        {"preserve-status", no_argument, NULL, OPT_PRESERVE_STATUS},
        {0},
};

/* The options that edit the job's spec as they come, so that a bad one is
 * reported where it stands among the others. Returns 1 if c is not one of
 * them. */
static int job_option(int c, const char *arg, mps_spec *spec, struct mps__cli_error *e) {
        unsigned long long u;
        long long n;
        int r;
        switch (c) {
        case 'e':
                if (!strchr(arg, '=') || arg[0] == '=')
                        return refuse(e, true, "bad --env '%s' (NAME=VALUE)", arg);
                if (apply_env(spec, arg) < 0)
                        return refuse(e, true, "bad --env '%s'", arg);
                return 0;
        case 'u':
                if (mps_spec_env_unset(spec, arg) < 0)
                        return refuse(e, true, "bad --unset '%s' (a variable name)", arg);
                return 0;
        case OPT_RLIMIT:
                if (apply_rlimit(spec, arg) < 0)
                        return refuse(e, true,
                                      "bad --rlimit '%s' (RES=SOFT[:HARD], e.g. "
                                      "nofile=256:1024 or core=unlimited)",
                                      arg);
                return 0;
        case OPT_SECCOMP:
                r = mps_spec_set_seccomp_file(spec, arg);
                if (r < 0)
                        return refuse(e, false, "cannot read --seccomp '%s': %s", arg,
                                      r == -EFBIG ? "too large" : mps_strerror(r));
                return 0;
        case OPT_NICE:
                if (mps__parse_signed(arg, -20, 19, &n) < 0 || mps_spec_set_nice(spec, (int)n) < 0)
                        return refuse(e, true, "bad --nice '%s' (-20 to 19)", arg);
                return 0;
        case OPT_UMASK:
                if (mps__parse_unsigned(arg, 8, 0, 0777, &u) < 0 ||
                    mps_spec_set_umask(spec, (mode_t)u) < 0)
                        return refuse(e, true, "bad --umask '%s' (octal, e.g. 022)", arg);
                return 0;
        case OPT_NNP:
                mps_spec_set_no_new_privs(spec, true);
                return 0;
        case OPT_PDEATHSIG:
                r = mps__cli_parse_signal(arg);
                if (r <= 0 || mps_spec_set_pdeathsig(spec, r) < 0)
                        return refuse(e, true, "bad --pdeathsig '%s' (a signal)", arg);
                return 0;
        case OPT_KILL_TREE:
                mps_spec_set_kill_tree(spec, true);
                return 0;
        default:
                return 1;
        }
}

/*
 * What getopt refused (opterr is 0: it said nothing), told apart: an
 * unknown option, an ambiguous abbreviation, one without its value, or a
 * value given to one that takes none. glibc leaves optopt 0 for an unknown
 * or ambiguous long option and the option's character or value otherwise;
 * argv[optind - 1] is the word it was in.
 */
static int unknown_option(char **argv, const char *shorts, const struct option *longs,
                          struct mps__cli_error *e) {
        const char *word = argv[optind - 1];
        if (strncmp(word, "--", 2) == 0 && word[2]) {
                int len = (int)strcspn(word + 2, "=");
                if (optopt == 0) {
                        int matches = 0;
                        for (const struct option *l = longs; l->name; l++)
                                matches += strncmp(l->name, word + 2, (size_t)len) == 0;
                        if (matches > 1)
                                return refuse(e, true, "option '--%.*s' is ambiguous", len,
                                              word + 2);
                        return refuse(e, true, "unknown option '--%.*s'", len, word + 2);
                }
                if (word[2 + len] == '=')
                        return refuse(e, true, "option '--%.*s' takes no value", len, word + 2);
                return refuse(e, true, "option '%s' needs a value", word);
        }
        const char *known = optopt > 0 && optopt < 256 && optopt != '+' && optopt != ':'
                                    ? strchr(shorts, optopt) : NULL;
        if (known && known[1] == ':')
                return refuse(e, true, "option '-%c' needs a value", (char)optopt);
        return refuse(e, true, "unknown option '-%c'", (char)(optopt ? optopt : '?'));
}

/* --close-fds, --pass-fd N, --preserve-fds N; 1 if c is none of them. A
 * job's fds go up to 1023 (MPS_WIRE_TARGET_FD_MAX): naming one above is an
 * error, since it could not be kept. */
static int fd_option(int c, const char *arg, struct mps__cli_options *o,
                     struct mps__cli_error *e) {
        unsigned long long n;
        switch (c) {
        case OPT_CLOSE_FDS:
                break;
        case OPT_PASS_FD:
                if (mps__parse_unsigned(arg, 10, 0, 1023, &n) < 0)
                        return refuse(e, true, "bad --pass-fd '%s' (an fd number, 0 to "
                                               "1023, the highest a job can be given)", arg);
                o->pass_fd_set[n / 32] |= 1u << (n % 32);
                break;
        case OPT_PRESERVE_FDS:
                if (mps__parse_unsigned(arg, 10, 0, 1021, &n) < 0)
                        return refuse(e, true, "bad --preserve-fds '%s' (a count, 0 to 1021: "
                                               "fds 3 to 3+N-1, up to 1023)", arg);
                o->preserve_fds = (unsigned)n;
                break;
        default:
                return 1;
        }
        o->fds_explicit = true;
        return 0;
}

/* -j 0: one worker per online CPU, within what -j takes. */
static unsigned online_cpus(void) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n < 1 ? 1 : n > 4096 ? 4096 : (unsigned)n;
}

/* --json-fd FD: an open fd that can be written. */
static int parse_json_fd(const char *s, int *ret) {
        unsigned long long n;
        if (mps__parse_unsigned(s, 10, 0, INT32_MAX, &n) < 0)
                return -EINVAL;
        int flags = fcntl((int)n, F_GETFL);
        if (flags < 0)
                return -EBADF;
        if ((flags & O_ACCMODE) == O_RDONLY)
                return -EBADF;
        *ret = (int)n;
        return 0;
}

/* Batch input as xargs takes it (-0, -d, -I, -i, --progress), the JSON
 * records' fd and timeout(1)'s --signal and --preserve-status (issue 14,
 * items 7-9). Returns 1 if c is not one of them. */
static int batch_json_option(int c, const char *arg, struct mps__cli_options *o,
                             struct mps__cli_error *e) {
        int r;
        switch (c) {
        case '0':
                o->delimited = true;
                o->delim = '\0';
                return 0;
        case 'd':
                r = mps__cmdline_parse_delim(arg, &o->delim);
                if (r < 0)
                        return refuse(e, true,
                                      "bad --delimiter '%s' (one character, or an escape: "
                                      "\\n, \\t, \\0, \\\\, octal \\NNN, hex \\xHH)",
                                      arg);
                o->delimited = true;
                return 0;
        case 'I':
                if (!arg[0])
                        return refuse(e, true, "%s", "bad -I '' (a string to replace)");
                o->replace = arg;
                return 0;
        case 'i':
                if (arg && !arg[0])
                        return refuse(e, true, "%s", "bad --replace '' (a string to replace)");
                o->replace = arg ? arg : "{}";
                return 0;
        case OPT_PROGRESS:
                o->progress = true;
                return 0;
        case OPT_JSON_FD:
                r = parse_json_fd(arg, &o->json_fd);
                if (r == -EBADF)
                        return refuse(e, true, "bad --json-fd '%s' (not an fd open for writing)",
                                      arg);
                if (r < 0)
                        return refuse(e, true, "bad --json-fd '%s' (an fd number)", arg);
                o->json = true;
                return 0;
        case OPT_SIGNAL:
                r = mps__cli_parse_signal(arg);
                if (r <= 0 || mps_spec_set_timeout_signal(o->spec, r) < 0)
                        return refuse(e, true, "bad --signal '%s' (a signal: TERM, INT, 9...)",
                                      arg);
                o->timeout_signal = r;
                return 0;
        case OPT_PRESERVE_STATUS:
                o->preserve_status = true;
                return 0;
        default:
                return 1;
        }
}

/* The options that mpspawn itself uses, kept in o until the end. */
static int run_option(int c, const char *arg, char **argv, struct mps__cli_options *o,
                      struct mps__cli_error *e) {
        unsigned long long n;
        int r;
        switch (c) {
        case 's':
                o->socket = arg;
                break;
        case 'C':
                o->cwd = arg;
                break;
        case OPT_CLEAR_ENV:
                o->clear_env = true;
                break;
        case OPT_NAME:
                o->name = arg;
                break;
        case OPT_NEW_SESSION:
                o->new_session = true;
                break;
        case OPT_TIMEOUT:
                if (parse_seconds(arg, &o->timeout) < 0 || o->timeout == 0)
                        return refuse(e, true,
                                      "bad --timeout '%s' (a duration > 0: 2.5, 1.5s, 2m, 1h, 1d)",
                                      arg);
                break;
        case OPT_KILL_AFTER:
                if (parse_seconds(arg, &o->kill_after) < 0)
                        return refuse(e, true,
                                      "bad --kill-after '%s' (a duration: 5, 0.5s, 1m...)", arg);
                break;
        case OPT_DETACH:
                o->detach = true;
                break;
        case OPT_JSON:
                o->json = true;
                break;
        case 'j':
                if (mps__parse_unsigned(arg, 10, 0, 4096, &n) < 0)
                        return refuse(e, true, "bad --jobs '%s' (0 to 4096; 0: one per CPU)",
                                      arg);
                o->jobs = n > 0 ? (unsigned)n : online_cpus();
                break;
        case OPT_HALT:
                o->halt_on_failure = true;
                break;
        case OPT_KEEP:
                o->halt_on_failure = false;
                break;
        case OPT_CALL:
                o->call = arg;
                break;
        case OPT_ARGS:
                o->args = arg;
                break;
        /* The job's terminal: the last of --pty and --no-pty counts. */
        case OPT_PTY:
                o->pty = MPS__PTY_FORCE;
                break;
        case OPT_NO_PTY:
                o->pty = MPS__PTY_NEVER;
                break;
        case 'h':
                o->mode = MPS__CLI_HELP;
                break;
        case 'V':
                o->mode = MPS__CLI_VERSION;
                break;
        default:
                if ((r = fd_option(c, arg, o, e)) <= 0)
                        return r;
                r = batch_json_option(c, arg, o, e);
                if (r == 1)
                        return unknown_option(argv, shortopts, longopts, e);
                return r;
        }
        return 0;
}

/* Takes the options before PROGRAM (or the subcommand) into o, which has
 * its spec. Returns the index of the first word after them, or -EINVAL.
 * --help and --version end the parsing where they stand. */
static int parse_options(int argc, char **argv, struct mps__cli_options *o,
                         struct mps__cli_error *e) {
        int c, r;
        opterr = 0;
        /* 0, not 1: glibc then starts afresh, forgetting what an earlier
         * parse (a test's, or one that stopped inside "-hV") left behind. */
        optind = 0;
        while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
                r = job_option(c, optarg, o->spec, e);
                if (r == 1)
                        r = run_option(c, optarg, argv, o, e);
                if (r < 0)
                        return r;
                if (o->mode == MPS__CLI_HELP || o->mode == MPS__CLI_VERSION)
                        break;
        }
        return optind;
}

/* The combinations the options may not make, in the order they are
 * reported. */
static int check_combinations(const struct mps__cli_options *o, struct mps__cli_error *e) {
        if (o->call && (o->ncommand > 0 || o->jobs > 0))
                return refuse(e, true, "%s",
                              "--call runs an entry point: give no PROGRAM and no --jobs");
        if (o->args && !o->call)
                return refuse(e, true, "%s", "--args goes with --call");
        if (o->call && mps_spec_set_call(o->spec, o->call, o->args) < 0)
                return refuse(e, true, "bad --call/--args: '%s' is not valid JSON",
                              o->args ? o->args : "");
        if (o->ncommand == 0 && o->jobs == 0 && !o->call)
                return refuse(e, true, "%s", "no PROGRAM given");
        if (o->jobs > 0 && o->detach)
                return refuse(e, true, "%s", "--detach does not go with --jobs");
        if (o->kill_after >= 0 && o->timeout == 0)
                return refuse(e, true, "%s", "--kill-after needs --timeout");
        if (o->timeout_signal && o->timeout == 0)
                return refuse(e, true, "%s", "--signal needs --timeout");
        if (o->jobs == 0 && (o->delimited || o->replace || o->progress))
                return refuse(e, true, "%s",
                              "-0, -d, -I, -i and --progress go with --jobs (batch mode)");
        if (o->replace && o->ncommand == 0)
                return refuse(e, true, "%s", "-I needs a PROGRAM to put the items in");
        return 0;
}

/* Puts into the spec what the options kept until the end. */
static int describe_job(const struct mps__cli_options *o, struct mps__cli_error *e) {
        mps_spec *spec = o->spec;
        if ((o->clear_env && mps_spec_env_clear(spec) < 0) ||
            (o->cwd && mps_spec_set_cwd(spec, o->cwd) < 0) ||
            (o->name && mps_spec_set_name(spec, o->name) < 0) ||
            mps_spec_set_new_session(spec, o->new_session) < 0 ||
            (o->timeout > 0 && mps_spec_set_timeout(spec, o->timeout, o->kill_after) < 0) ||
            /* A daemon job: if mpspawn dies, the server ends the job. A
             * detached one is meant to outlive us. */
            mps_spec_set_daemon(spec, !o->detach) < 0 ||
            mps_spec_set_detached(spec, o->detach) < 0)
                return refuse(e, true, "%s", "bad arguments");
        return 0;
}

/* --- the subcommands -------------------------------------------------------- */

/* The words after the subcommand's options. */
static int subcommand_args(int nargs, char **args, struct mps__cli_options *o,
                           struct mps__cli_error *e) {
        switch (o->mode) {
        case MPS__CLI_PS:
        case MPS__CLI_STATS:
                if (nargs != 0)
                        return refuse(e, true, "unexpected argument '%s'", args[0]);
                return 0;
        case MPS__CLI_WAIT:
                if (nargs != 1 || parse_id(args[0], &o->id) < 0)
                        return refuse(e, true, "%s", "usage: mpspawn wait [--json] ID");
                return 0;
        default: /* kill */
                if (nargs < 1 || nargs > 2 || parse_id(args[0], &o->id) < 0)
                        return refuse(e, true, "%s", "usage: mpspawn kill ID [SIGNAL]");
                if (nargs == 2 && (o->signal = mps__cli_parse_signal(args[1])) < 0)
                        return refuse(e, true, "unknown signal '%s'", args[1]);
                return 0;
        }
}

/* `ps|kill|wait|stats [OPTIONS] ARG...`: argv[0] is the subcommand; socket
 * is the -s given before it, if any (its own -s wins). */
static int parse_subcommand(int argc, char **argv, const char *socket,
                            struct mps__cli_options *ret, struct mps__cli_error *e) {
        static const struct option sub_longopts[] = {
                {"socket", required_argument, NULL, 's'},
                {"json", no_argument, NULL, 'J'},
                {"help", no_argument, NULL, 'h'},
                {0},
        };
        struct mps__cli_options o = {.subcommand = argv[0], .socket = socket, .kill_after = -1,
                                     .signal = SIGTERM, .json_fd = -1, .delim = '\n'};
        int c, r;
        subcommand_mode(argv[0], &o.mode);
        opterr = 0;
        optind = 0; /* as in parse_options */
        while ((c = getopt_long(argc, argv, "+s:h", sub_longopts, NULL)) != -1) {
                switch (c) {
                case 's':
                        o.socket = optarg;
                        break;
                case 'J':
                        o.json = true;
                        break;
                case 'h':
                        o.mode = MPS__CLI_SUBCOMMAND_HELP;
                        *ret = o;
                        return 0;
                default:
                        return unknown_option(argv, "+s:h", sub_longopts, e);
                }
        }
        r = subcommand_args(argc - optind, argv + optind, &o, e);
        if (r < 0)
                return r;
        *ret = o;
        return 0;
}

/* --- the whole command line -------------------------------------------------- */

int mps__cli_parse(int argc, char **argv, struct mps__cli_options *ret,
                   struct mps__cli_error *ret_error) {
        struct mps__cli_options o = {.mode = MPS__CLI_RUN, .kill_after = -1, .signal = SIGTERM,
                                     .json_fd = -1, .delim = '\n'};
        enum mps__cli_mode sub;
        int first, r;

        if (argc >= 2 && strcmp(argv[1], "server") == 0) {
                o.mode = MPS__CLI_SERVER;
                o.command = argv + 1;
                o.ncommand = argc - 1;
                *ret = o;
                return 0;
        }
        if (argc >= 2 && subcommand_mode(argv[1], &sub))
                return parse_subcommand(argc - 1, argv + 1, NULL, ret, ret_error);
        if (mps_spec_new(&o.spec) < 0)
                return refuse(ret_error, false, "%s", "out of memory");
        r = first = parse_options(argc, argv, &o, ret_error);
        if (r < 0)
                goto fail;
        if (o.mode == MPS__CLI_HELP || o.mode == MPS__CLI_VERSION) {
                mps_spec_free(o.spec);
                o.spec = NULL;
                *ret = o;
                return 0;
        }
        /* `mpspawn -s SOCK ps`: a subcommand after options (but not after
         * "--", which makes it a PROGRAM). Only the socket carries over. */
        if (first < argc && subcommand_mode(argv[first], &sub) &&
            strcmp(argv[first - 1], "--") != 0) {
                mps_spec_free(o.spec);
                return parse_subcommand(argc - first, argv + first, o.socket, ret, ret_error);
        }
        o.command = argv + first;
        o.ncommand = argc - first;
        r = check_combinations(&o, ret_error);
        if (r == 0)
                r = describe_job(&o, ret_error);
        if (r < 0)
                goto fail;
        o.mode = o.jobs > 0 ? MPS__CLI_BATCH : MPS__CLI_RUN;
        *ret = o;
        return 0;
fail:
        mps_spec_free(o.spec);
        return r;
}
