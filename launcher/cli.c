/*
 * cli.c: the mpspawn command over the public libmpspawn API: options,
 * running one job with signal forwarding, and the exit-status conventions
 * of env(1) and timeout(1). Batch mode and the job subcommands live in
 * cli_batch.c and cli_subcommands.c.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fdutil.h"
#include "rlimits.h"

int mps__forkserver_path(char *buf, size_t len);

static const char usage[] =
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
        "      --timeout SECONDS  the server sends SIGTERM after SECONDS (fractions\n"
        "                         allowed), then SIGKILL after --kill-after\n"
        "      --kill-after SECONDS  time from the timeout's SIGTERM to SIGKILL\n"
        "                         (default 5)\n"
        "      --rlimit RES=SOFT[:HARD]  set a resource limit (repeatable): RES is\n"
        "                         any RLIMIT_* name in any case (nofile, CORE,\n"
        "                         RLIMIT_AS...); values are numbers or 'unlimited';\n"
        "                         without :HARD the hard limit is left as it is\n"
        "      --seccomp FILE     load the seccomp policy FILE in the job, last before\n"
        "                         exec (format: docs/policy.md); a bad policy is\n"
        "                         reported with its file, line and word, and nothing\n"
        "                         is started\n"
        "      --nice N           the job's nice value (-20..19)\n"
        "      --umask MODE       the job's umask (octal, e.g. 027)\n"
        "      --no-new-privs     the job cannot gain privileges through exec\n"
        "      --pdeathsig SIG    the signal the job gets if the forkserver dies\n"
        "      --kill-tree        signals reach the job's whole process group, and\n"
        "                         what it leaves in it is killed when it ends\n"
        "      --detach           start, print the job's ID and PID, and exit 0 at\n"
        "                         once; the job runs on (use a shared server to\n"
        "                         wait for or kill it later)\n"
        "      --json             print the exit record as one JSON line on stderr\n"
        "                         (with --detach: print {\"id\",\"pid\"} on stdout)\n"
        "      --call ENTRY       run entry point ENTRY of a library the server\n"
        "                         preloaded (mpforkserver --preload), in a\n"
        "                         copy-on-write child, instead of a PROGRAM; its\n"
        "                         return value is the exit status\n"
        "      --args JSON        the arguments of --call, as JSON text\n"
        "  -j, --jobs N           batch mode: read one command per line from stdin\n"
        "                         and run N at a time, like xargs -P N. Quoting as in\n"
        "                         sh without expansion: '...', \"...\", \\ (see\n"
        "                         docs/batch.md); blank lines and # comments are\n"
        "                         skipped; PROGRAM ARG..., if given, go before each\n"
        "                         line's words. Jobs get /dev/null as stdin\n"
        "      --halt-on-failure  batch mode: start nothing more after a failure\n"
        "      --keep-going       batch mode: run every line whatever fails (default)\n"
        "  -h, --help             show this help and exit\n"
        "  -V, --version          show the version and exit\n"
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
        "  124    --timeout expired (137 if SIGKILL was needed, as timeout(1))\n"
        "  125    mpspawn itself failed (bad option, no forkserver, bad --cwd)\n"
        "  126    PROGRAM was found but could not be executed\n"
        "  127    PROGRAM was not found; `wait` of an unknown ID\n"
        "  123    batch mode: some job failed (non-zero, signal, not started)\n"
        "  1      `kill` of an unknown ID\n"
        "\n"
        "Environment:\n"
        "  MPSPAWN_SOCKET      the socket to use when --socket is not given\n"
        "  MPSPAWN_FORKSERVER  the mpforkserver binary for a private server\n"
        "  MPSPAWN_DEBUG       if set, a private server logs to mpspawn's stderr\n";

const int mps__cli_forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT,
                                  SIGUSR1, SIGUSR2, SIGWINCH};
const size_t mps__cli_nforwarded = sizeof(mps__cli_forwarded) / sizeof(int);

int mps__cli_usage_error(const char *fmt, const char *arg) {
        fprintf(stderr, "mpspawn: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\nTry 'mpspawn --help' for more information.\n");
        return MPS_EXIT_LAUNCHER;
}

int mps__cli_signalfd(void) {
        sigset_t sigs;
        sigemptyset(&sigs);
        for (size_t i = 0; i < mps__cli_nforwarded; i++)
                sigaddset(&sigs, mps__cli_forwarded[i]);
        sigprocmask(SIG_BLOCK, &sigs, NULL);
        return signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
}

int mps__cli_parse_signal(const char *s) {
        char *end;
        errno = 0;
        long n = strtol(s, &end, 10);
        if (*s && !*end && !errno)
                return n >= 0 && n < NSIG ? (int)n : -1;
        if (strncasecmp(s, "SIG", 3) == 0)
                s += 3;
        for (int sig = 1; sig < NSIG; sig++) {
                const char *abbrev = sigabbrev_np(sig);
                if (abbrev && strcasecmp(abbrev, s) == 0)
                        return sig;
        }
        return -1;
}

int mps__cli_exit_status(const mps_exit_info *info) {
        if (info->timed_out && info->exitcode != -SIGKILL)
                return MPS_EXIT_TIMEOUT;
        if (info->exitcode >= 0)
                return info->exitcode;
        return MPS_EXIT_SIGNAL_BASE + -info->exitcode;
}

void mps__cli_print_json_exit(FILE *f, uint64_t id, pid_t pid, const mps_exit_info *info) {
        cJSON *o = cJSON_CreateObject();
        char idbuf[24];
        if (!o)
                return;
        snprintf(idbuf, sizeof(idbuf), "%llu", (unsigned long long)id);
        cJSON_AddItemToObject(o, "id", cJSON_CreateRaw(idbuf));
        if (pid > 0)
                cJSON_AddNumberToObject(o, "pid", pid);
        else
                cJSON_AddNullToObject(o, "pid"); /* wait ID: the server's record has none for us */
        cJSON_AddNumberToObject(o, "exitcode", info->exitcode);
        if (info->exitcode < 0)
                cJSON_AddNumberToObject(o, "signal", -info->exitcode);
        else
                cJSON_AddNullToObject(o, "signal");
        cJSON_AddBoolToObject(o, "core_dumped", info->core_dumped);
        cJSON_AddBoolToObject(o, "timed_out", info->timed_out);
        cJSON_AddNumberToObject(o, "user_seconds", info->user_seconds);
        cJSON_AddNumberToObject(o, "system_seconds", info->system_seconds);
        cJSON_AddNumberToObject(o, "max_rss_kib", (double)info->max_rss_kib);
        cJSON_AddNumberToObject(o, "wall_seconds", info->wall_seconds);
        char *s = cJSON_PrintUnformatted(o);
        if (s) {
                fprintf(f, "%s\n", s);
                fflush(f);
                cJSON_free(s);
        }
        cJSON_Delete(o);
}

static int run_server(char **argv) {
        char path[PATH_MAX];
        int r = mps__forkserver_path(path, sizeof(path));
        if (r < 0) {
                fprintf(stderr, "mpspawn: cannot find mpforkserver: %s\n", strerror(-r));
                return MPS_EXIT_LAUNCHER;
        }
        argv[0] = path;
        execv(path, argv);
        int e = errno;
        fprintf(stderr, "mpspawn: cannot execute '%s': %s\n", path, strerror(e));
        return e == ENOENT ? MPS_EXIT_NOT_FOUND : MPS_EXIT_CANNOT_EXEC;
}

/* Seconds: a non-negative decimal number (fractions allowed). */
static int parse_seconds(const char *s, double *ret) {
        char *end;
        errno = 0;
        double d = strtod(s, &end);
        if (errno || end == s || *end || !(d >= 0) || d > 1e7 || isnan(d))
                return -EINVAL;
        *ret = d;
        return 0;
}

static int parse_limit_value(const char *s, rlim_t *ret) {
        char *end;
        if (strcasecmp(s, "unlimited") == 0 || strcasecmp(s, "infinity") == 0) {
                *ret = RLIM_INFINITY;
                return 0;
        }
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s || *end || s[0] == '-' || v >= (unsigned long long)MPS_RLIM_KEEP)
                return -EINVAL;
        *ret = (rlim_t)v;
        return 0;
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

struct cli_opts {
        const char *socket;
        const char *cwd;
        const char *name;
        bool clear_env;
        bool new_session;
        bool detach;
        bool json;
        bool halt_on_failure;
        double timeout, kill_after;
        unsigned jobs; /* 0: not batch mode */
        const char *call, *args;
};

/* Runs the one job to its end, forwarding signals. */
static int run_one(mps_client *client, mps_spec *spec, const struct cli_opts *o, int sfd) {
        mps_process *proc = NULL;
        int status = MPS_EXIT_LAUNCHER, r;

        if (mps_process_new(client, spec, &proc) < 0) {
                fprintf(stderr, "mpspawn: %s\n", mps_client_error(client));
                return MPS_EXIT_LAUNCHER;
        }
        r = mps_start(proc);
        if (r < 0) {
                const char *stage = mps_start_failed_stage(proc);
                fprintf(stderr, "mpspawn: %s\n", mps_client_error(client));
                if (stage && strcmp(stage, "exec") == 0)
                        status = r == -ENOENT ? MPS_EXIT_NOT_FOUND : MPS_EXIT_CANNOT_EXEC;
                mps_process_close(proc);
                return status;
        }
        if (o->detach) {
                if (o->json)
                        printf("{\"id\":%llu,\"pid\":%d}\n",
                               (unsigned long long)mps_job_id(proc), (int)mps_pid(proc));
                else
                        printf("%llu %d\n", (unsigned long long)mps_job_id(proc),
                               (int)mps_pid(proc));
                fflush(stdout);
                /* The handle goes; the job does not: the server keeps its
                 * exit for `mpspawn wait`. */
                mps_process_close(proc);
                return 0;
        }

        for (;;) {
                struct pollfd pfd[2] = {
                        {.fd = mps_client_fd(client), .events = POLLIN},
                        {.fd = sfd, .events = POLLIN},
                };
                if (mps_exitcode(proc) != MPS_EXITCODE_NONE) {
                        mps_exit_info info;
                        mps_exit_info_get(proc, &info);
                        if (o->json)
                                mps__cli_print_json_exit(stderr, mps_job_id(proc),
                                                         mps_pid(proc), &info);
                        status = mps__cli_exit_status(&info);
                        break;
                }
                /* is_alive may take in the exit record that exitcode just
                 * missed: only a handle that ended without one is lost. */
                if (!mps_is_alive(proc) && mps_exitcode(proc) == MPS_EXITCODE_NONE) {
                        fprintf(stderr, "mpspawn: %s\n", mps_client_error(client));
                        break;
                }
                r = poll(pfd, 2, -1);
                if (r < 0 && errno != EINTR) {
                        fprintf(stderr, "mpspawn: poll: %s\n", strerror(errno));
                        break;
                }
                if (pfd[1].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        while (mps__read_retry(sfd, &si, sizeof(si)) == sizeof(si))
                                mps_send_signal(proc, (int)si.ssi_signo);
                }
                if (pfd[0].revents)
                        mps_client_dispatch(client);
        }
        if (mps_process_close(proc) < 0) {
                /* Still running (we are leaving on an error): end it rather
                 * than leave it behind. */
                mps_kill(proc);
                mps_join(proc, -1);
                mps_process_close(proc);
        }
        return status;
}

static bool is_subcommand(const char *s) {
        return strcmp(s, "ps") == 0 || strcmp(s, "kill") == 0 ||
               strcmp(s, "wait") == 0 || strcmp(s, "stats") == 0;
}

int mps__cli_main(int argc, char **argv) {
        enum {
                OPT_CLEAR_ENV = 256, OPT_NAME, OPT_NEW_SESSION, OPT_TIMEOUT,
                OPT_KILL_AFTER, OPT_RLIMIT, OPT_DETACH, OPT_JSON, OPT_HALT, OPT_KEEP,
                OPT_CALL, OPT_ARGS, OPT_SECCOMP, OPT_NICE, OPT_UMASK, OPT_NNP,
                OPT_PDEATHSIG, OPT_KILL_TREE,
        };
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
                {"args", required_argument, NULL, OPT_ARGS},
                {"halt-on-failure", no_argument, NULL, OPT_HALT},
                {"keep-going", no_argument, NULL, OPT_KEEP},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},
                {0},
        };
        struct cli_opts o = {.kill_after = -1};
        mps_spec *spec = NULL;
        mps_client *client = NULL;
        char *msg = NULL, *end;
        int status = MPS_EXIT_LAUNCHER, c, r, sfd = -1;

        if (argc >= 2 && strcmp(argv[1], "server") == 0)
                return run_server(argv + 1);
        if (argc >= 2 && is_subcommand(argv[1]))
                return mps__cli_jobs_main(argc - 1, argv + 1, NULL);

        if (mps_spec_new(&spec) < 0) {
                fprintf(stderr, "mpspawn: out of memory\n");
                return MPS_EXIT_LAUNCHER;
        }
        opterr = 0;
        optind = 1;
        /* '+': stop at the first non-option, so PROGRAM's own options stay
         * its own without needing "--". */
        while ((c = getopt_long(argc, argv, "+s:C:e:u:j:hV", longopts, NULL)) != -1) {
                switch (c) {
                case 's':
                        o.socket = optarg;
                        break;
                case 'C':
                        o.cwd = optarg;
                        break;
                case 'e': {
                        char *eq = strchr(optarg, '=');
                        if (!eq || eq == optarg) {
                                status = mps__cli_usage_error("bad --env '%s' (NAME=VALUE)",
                                                              optarg);
                                goto out;
                        }
                        *eq = '\0';
                        r = mps_spec_env_set(spec, optarg, eq + 1);
                        *eq = '=';
                        if (r < 0) {
                                status = mps__cli_usage_error("bad --env '%s'", optarg);
                                goto out;
                        }
                        break;
                }
                case 'u':
                        if (mps_spec_env_unset(spec, optarg) < 0) {
                                status = mps__cli_usage_error(
                                        "bad --unset '%s' (a variable name)", optarg);
                                goto out;
                        }
                        break;
                case OPT_CLEAR_ENV:
                        o.clear_env = true;
                        break;
                case OPT_NAME:
                        o.name = optarg;
                        break;
                case OPT_NEW_SESSION:
                        o.new_session = true;
                        break;
                case OPT_TIMEOUT:
                        if (parse_seconds(optarg, &o.timeout) < 0 || o.timeout == 0) {
                                status = mps__cli_usage_error(
                                        "bad --timeout '%s' (seconds > 0, e.g. 2.5)", optarg);
                                goto out;
                        }
                        break;
                case OPT_KILL_AFTER:
                        if (parse_seconds(optarg, &o.kill_after) < 0) {
                                status = mps__cli_usage_error(
                                        "bad --kill-after '%s' (seconds, e.g. 5)", optarg);
                                goto out;
                        }
                        break;
                case OPT_RLIMIT:
                        if (apply_rlimit(spec, optarg) < 0) {
                                status = mps__cli_usage_error(
                                        "bad --rlimit '%s' (RES=SOFT[:HARD], e.g. "
                                        "nofile=256:1024 or core=unlimited)",
                                        optarg);
                                goto out;
                        }
                        break;
                case OPT_DETACH:
                        o.detach = true;
                        break;
                case OPT_JSON:
                        o.json = true;
                        break;
                case 'j':
                        errno = 0;
                        unsigned long n = strtoul(optarg, &end, 10);
                        if (errno || end == optarg || *end || n == 0 || n > 4096 ||
                            optarg[0] == '-') {
                                status = mps__cli_usage_error("bad --jobs '%s' (1 to 4096)",
                                                              optarg);
                                goto out;
                        }
                        o.jobs = (unsigned)n;
                        break;
                case OPT_HALT:
                        o.halt_on_failure = true;
                        break;
                case OPT_CALL:
                        o.call = optarg;
                        break;
                case OPT_SECCOMP:
                        r = mps_spec_set_seccomp_file(spec, optarg);
                        if (r < 0) {
                                fprintf(stderr, "mpspawn: cannot read --seccomp '%s': %s\n",
                                        optarg, r == -EFBIG ? "too large" : mps_strerror(r));
                                goto out;
                        }
                        break;
                case OPT_NICE: {
                        errno = 0;
                        long nv = strtol(optarg, &end, 10);
                        if (errno || end == optarg || *end || nv < -20 || nv > 19 ||
                            mps_spec_set_nice(spec, (int)nv) < 0) {
                                status = mps__cli_usage_error("bad --nice '%s' (-20 to 19)",
                                                              optarg);
                                goto out;
                        }
                        break;
                }
                case OPT_UMASK: {
                        errno = 0;
                        unsigned long m = strtoul(optarg, &end, 8);
                        if (errno || end == optarg || *end || m > 0777 || optarg[0] == '-' ||
                            mps_spec_set_umask(spec, (mode_t)m) < 0) {
                                status = mps__cli_usage_error("bad --umask '%s' (octal, e.g. 022)",
                                                              optarg);
                                goto out;
                        }
                        break;
                }
                case OPT_NNP:
                        mps_spec_set_no_new_privs(spec, true);
                        break;
                case OPT_PDEATHSIG: {
                        int sig = mps__cli_parse_signal(optarg);
                        if (sig <= 0 || mps_spec_set_pdeathsig(spec, sig) < 0) {
                                status = mps__cli_usage_error("bad --pdeathsig '%s' (a signal)",
                                                              optarg);
                                goto out;
                        }
                        break;
                }
                case OPT_KILL_TREE:
                        mps_spec_set_kill_tree(spec, true);
                        break;
                case OPT_ARGS:
                        o.args = optarg;
                        break;
                case OPT_KEEP:
                        o.halt_on_failure = false;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        status = 0;
                        goto out;
                case 'V':
                        printf("mpspawn %s\n", mps_version());
                        status = 0;
                        goto out;
                default:
                        if (optopt && optopt < 256)
                                status = mps__cli_usage_error(
                                        "option '-%s' is unknown or needs a value",
                                        (char[]){(char)optopt, 0});
                        else
                                status = mps__cli_usage_error(
                                        "option '%s' is unknown or needs a value",
                                        argv[optind - 1]);
                        goto out;
                }
        }
        /* `mpspawn -s SOCK ps`: a subcommand after options (but not after
         * "--", which makes it a PROGRAM). */
        if (optind < argc && is_subcommand(argv[optind]) &&
            strcmp(argv[optind - 1], "--") != 0) {
                mps_spec_free(spec);
                return mps__cli_jobs_main(argc - optind, argv + optind, o.socket);
        }
        if (o.call && (optind < argc || o.jobs > 0)) {
                status = mps__cli_usage_error("%s", "--call runs an entry point: give no "
                                                    "PROGRAM and no --jobs");
                goto out;
        }
        if (o.args && !o.call) {
                status = mps__cli_usage_error("%s", "--args goes with --call");
                goto out;
        }
        if (o.call && mps_spec_set_call(spec, o.call, o.args) < 0) {
                status = mps__cli_usage_error("bad --call/--args: '%s' is not valid JSON",
                                              o.args ? o.args : "");
                goto out;
        }
        if (optind >= argc && o.jobs == 0 && !o.call) {
                status = mps__cli_usage_error("%s", "no PROGRAM given");
                goto out;
        }
        if (o.jobs > 0 && o.detach) {
                status = mps__cli_usage_error("%s", "--detach does not go with --jobs");
                goto out;
        }
        if (o.kill_after >= 0 && o.timeout == 0) {
                status = mps__cli_usage_error("%s", "--kill-after needs --timeout");
                goto out;
        }

        if ((o.clear_env && mps_spec_env_clear(spec) < 0) ||
            (o.cwd && mps_spec_set_cwd(spec, o.cwd) < 0) ||
            (o.name && mps_spec_set_name(spec, o.name) < 0) ||
            mps_spec_set_new_session(spec, o.new_session) < 0 ||
            (o.timeout > 0 && mps_spec_set_timeout(spec, o.timeout, o.kill_after) < 0) ||
            /* A daemon job: if mpspawn dies, the server ends the job. A
             * detached one is meant to outlive us. */
            mps_spec_set_daemon(spec, !o.detach) < 0 ||
            mps_spec_set_detached(spec, o.detach) < 0) {
                status = mps__cli_usage_error("%s", "bad arguments");
                goto out;
        }

        /* Block the forwarded signals before any job exists, so that none
         * is lost between start and the wait loop. */
        sfd = mps__cli_signalfd();
        if (sfd < 0) {
                fprintf(stderr, "mpspawn: signalfd: %s\n", strerror(errno));
                goto out;
        }
        r = mps_client_open(o.socket, &client, &msg);
        if (r < 0) {
                fprintf(stderr, "mpspawn: %s\n", msg ? msg : mps_strerror(r));
                goto out;
        }
        if (o.jobs > 0) {
                status = mps__cli_batch(client, spec, o.jobs, argv + optind, argc - optind,
                                        o.halt_on_failure, o.json, sfd);
                goto out;
        }
        if (!o.call &&
            mps_spec_set_exec(spec, argv[optind], (const char *const *)argv + optind) < 0) {
                status = mps__cli_usage_error("%s", "bad PROGRAM or arguments");
                goto out;
        }
        status = run_one(client, spec, &o, sfd);
out:
        mps_client_close(client);
        mps_spec_free(spec);
        free(msg);
        mps__safe_close(sfd);
        return status;
}
