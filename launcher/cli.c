/*
 * cli.c: the mpspawn command, over the public libmpspawn API only (plus the
 * forkserver lookup for `mpspawn server`). main() is in mpspawn.c.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "fdutil.h"

int mps__forkserver_path(char *buf, size_t len);

static const char usage[] =
        "Usage: mpspawn [OPTIONS] [--] PROGRAM [ARG...]\n"
        "       mpspawn server [SERVER OPTIONS]\n"
        "\n"
        "Runs PROGRAM through a forkserver with this process's stdin, stdout and\n"
        "stderr, waits for it, and exits with its status. Signals INT, TERM, HUP,\n"
        "QUIT, USR1, USR2 and WINCH received by mpspawn are forwarded to it; if\n"
        "mpspawn itself is killed, the forkserver ends the job (SIGTERM, then\n"
        "SIGKILL).\n"
        "\n"
        "Options:\n"
        "  -s, --socket PATH     the forkserver's socket. Default: $MPSPAWN_SOCKET,\n"
        "                        else /run/mpspawn/forkserver.sock or\n"
        "                        $XDG_RUNTIME_DIR/mpspawn.sock if a server answers\n"
        "                        there, else a private server started for this run\n"
        "  -C, --cwd DIR         run PROGRAM in DIR (default: the current directory)\n"
        "  -e, --env NAME=VALUE  set NAME in PROGRAM's environment (repeatable)\n"
        "  -u, --unset NAME      remove NAME from PROGRAM's environment (repeatable)\n"
        "      --clear-env       start PROGRAM with an empty environment (then -e)\n"
        "      --name NAME       a name for the job, as the server shows it\n"
        "      --new-session     run PROGRAM in a new session (setsid)\n"
        "  -h, --help            show this help and exit\n"
        "  -V, --version         show the version and exit\n"
        "\n"
        "A PROGRAM without '/' is searched for in PATH (the job's own PATH).\n"
        "\n"
        "Subcommands:\n"
        "  server [--socket PATH] ...  run a forkserver in the foreground\n"
        "                              (see mpforkserver --help)\n"
        "\n"
        "Exit status:\n"
        "  N      PROGRAM exited with N\n"
        "  128+N  PROGRAM was killed by signal N\n"
        "  125    mpspawn itself failed (bad option, no forkserver, bad cwd)\n"
        "  126    PROGRAM was found but could not be executed\n"
        "  127    PROGRAM was not found\n"
        "\n"
        "Environment:\n"
        "  MPSPAWN_SOCKET      the socket to use when --socket is not given\n"
        "  MPSPAWN_FORKSERVER  the mpforkserver binary for a private server\n"
        "  MPSPAWN_DEBUG       if set, a private server logs to mpspawn's stderr\n";

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT,
                                SIGUSR1, SIGUSR2, SIGWINCH};

struct cli_opts {
        const char *socket;
        const char *cwd;
        const char *name;
        bool clear_env;
        bool new_session;
};

static int usage_error(const char *fmt, const char *arg) {
        fprintf(stderr, "mpspawn: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\nTry 'mpspawn --help' for more information.\n");
        return MPS_EXIT_LAUNCHER;
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
        fprintf(stderr, "mpspawn: cannot execute '%s': %s\n", path, strerror(errno));
        return errno == ENOENT ? MPS_EXIT_NOT_FOUND : MPS_EXIT_CANNOT_EXEC;
}

static int exit_status_of(int code) {
        if (code >= 0)
                return code;
        return MPS_EXIT_SIGNAL_BASE + -code;
}

int mps__cli_main(int argc, char **argv) {
        enum { OPT_CLEAR_ENV = 256, OPT_NAME, OPT_NEW_SESSION };
        static const struct option longopts[] = {
                {"socket", required_argument, NULL, 's'},
                {"cwd", required_argument, NULL, 'C'},
                {"env", required_argument, NULL, 'e'},
                {"unset", required_argument, NULL, 'u'},
                {"clear-env", no_argument, NULL, OPT_CLEAR_ENV},
                {"name", required_argument, NULL, OPT_NAME},
                {"new-session", no_argument, NULL, OPT_NEW_SESSION},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},
                {0},
        };
        struct cli_opts o = {0};
        mps_spec *spec = NULL;
        mps_client *client = NULL;
        mps_process *proc = NULL;
        char *msg = NULL;
        int status = MPS_EXIT_LAUNCHER, c, r, sfd = -1;
        sigset_t sigs, old;

        if (argc >= 2 && strcmp(argv[1], "server") == 0)
                return run_server(argv + 1);

        if (mps_spec_new(&spec) < 0) {
                fprintf(stderr, "mpspawn: out of memory\n");
                return MPS_EXIT_LAUNCHER;
        }
        opterr = 0;
        optind = 1;
        /* '+': stop at the first non-option, so PROGRAM's own options stay
         * its own without needing "--". -e and -u are applied in order. */
        while ((c = getopt_long(argc, argv, "+s:C:e:u:hV", longopts, NULL)) != -1) {
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
                                status = usage_error("bad --env '%s' (NAME=VALUE)", optarg);
                                goto out;
                        }
                        *eq = '\0';
                        r = mps_spec_env_set(spec, optarg, eq + 1);
                        *eq = '=';
                        if (r < 0) {
                                status = usage_error("bad --env '%s'", optarg);
                                goto out;
                        }
                        break;
                }
                case 'u':
                        if (mps_spec_env_unset(spec, optarg) < 0) {
                                status = usage_error("bad --unset '%s' (a variable name)",
                                                     optarg);
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
                                status = usage_error("option '-%s' is unknown or needs "
                                                     "a value",
                                                     (char[]){(char)optopt, 0});
                        else
                                status = usage_error("option '%s' is unknown or needs a "
                                                     "value",
                                                     argv[optind - 1]);
                        goto out;
                }
        }
        if (optind >= argc) {
                status = usage_error("%s", "no PROGRAM given");
                goto out;
        }
        if (o.clear_env && mps_spec_env_clear(spec) < 0)
                goto out;
        if (mps_spec_set_exec(spec, argv[optind], (const char *const *)argv + optind) < 0 ||
            (o.cwd && mps_spec_set_cwd(spec, o.cwd) < 0) ||
            (o.name && mps_spec_set_name(spec, o.name) < 0) ||
            mps_spec_set_new_session(spec, o.new_session) < 0 ||
            /* A daemon job: if mpspawn dies, the server ends the job. */
            mps_spec_set_daemon(spec, true) < 0) {
                status = usage_error("%s", "bad arguments");
                goto out;
        }

        /* Block the forwarded signals before the job exists, so that none
         * is lost between start and the wait loop. */
        sigemptyset(&sigs);
        for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
                sigaddset(&sigs, forwarded[i]);
        sigprocmask(SIG_BLOCK, &sigs, &old);
        sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0) {
                fprintf(stderr, "mpspawn: signalfd: %s\n", strerror(errno));
                goto out;
        }

        r = mps_client_open(o.socket, &client, &msg);
        if (r < 0) {
                fprintf(stderr, "mpspawn: %s\n", msg ? msg : mps_strerror(r));
                goto out;
        }
        if ((r = mps_process_new(client, spec, &proc)) < 0) {
                fprintf(stderr, "mpspawn: %s\n", mps_client_error(client));
                goto out;
        }
        r = mps_start(proc);
        if (r < 0) {
                const char *stage = mps_start_failed_stage(proc);
                fprintf(stderr, "mpspawn: %s\n", mps_client_error(client));
                if (stage && strcmp(stage, "exec") == 0)
                        status = r == -ENOENT ? MPS_EXIT_NOT_FOUND : MPS_EXIT_CANNOT_EXEC;
                goto out;
        }

        for (;;) {
                struct pollfd pfd[2] = {
                        {.fd = mps_client_fd(client), .events = POLLIN},
                        {.fd = sfd, .events = POLLIN},
                };
                int code = mps_exitcode(proc);
                if (code != MPS_EXITCODE_NONE) {
                        status = exit_status_of(code);
                        break;
                }
                if (!mps_is_alive(proc)) {
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
out:
        if (proc && mps_process_close(proc) < 0) {
                /* Still running (we are leaving on an error): end it rather
                 * than leave it behind. */
                mps_kill(proc);
                mps_join(proc, -1);
                mps_process_close(proc);
        }
        mps_client_close(client);
        mps_spec_free(spec);
        free(msg);
        mps__safe_close(sfd);
        return status;
}
