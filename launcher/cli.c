/* SPDX-License-Identifier: MIT */
/*
 * cli.c: running what the mpspawn command line asks for (parsed by
 * cli_options.c): one job with signal forwarding and the exit-status
 * conventions of env(1) and timeout(1) (a job killed by signal N kills
 * mpspawn with N), with a terminal of its own when run from one
 * (cli_pty.c), or the server in the foreground;
 * batch mode and the job subcommands are cli_batch.c and
 * cli_subcommands.c.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli_pty.h"
#include "fdutil.h"

/* The library's own choice of server binary (client.c), which is not
 * public API. */
int mps__forkserver_path(char *buf, size_t len);

/* `mpspawn server ...`: becomes mpforkserver with the same arguments. */
static int run_server(char **argv) {
        char path[PATH_MAX];
        int r = mps__forkserver_path(path, sizeof(path));
        if (r < 0) {
                fprintf(stderr, "mpspawn: cannot find mpforkserver: %s\n", strerror(-r));
                return MPS_EXIT_LAUNCHER;
        }
        /* What the server's usage messages call it (forkserver/main.c). */
        argv[0] = "mpspawn server";
        execv(path, argv);
        int e = errno;
        fprintf(stderr, "mpspawn: cannot execute '%s': %s\n", path, strerror(e));
        return e == ENOENT ? MPS_EXIT_NOT_FOUND : MPS_EXIT_CANNOT_EXEC;
}

/* start_job's answer when the server has no terminal jobs. */
enum { START_NO_TERMINAL = -1 };

/* Starts proc. Returns 0, or the exit status after saying why it failed:
 * 127 or 126 when the exec failed, as a shell gives them, with --json a
 * record of the failure too; or, if may_lack_terminal, START_NO_TERMINAL
 * (saying nothing) when the server does not know terminal jobs (the
 * library refuses such a start before sending it). */
static int start_job(mps_client *client, mps_process *proc, const struct mps__cli_options *o,
                     bool may_lack_terminal) {
        int r = mps_start(proc);
        if (r == 0)
                return 0;
        if (r == -EOPNOTSUPP && may_lack_terminal)
                return START_NO_TERMINAL;
        const char *stage = mps_start_failed_stage(proc);
        int status = mps__cli_start_status(r, stage);
        fprintf(stderr, "mpspawn: %s\n", mps_client_error(client));
        if (o->json) {
                struct mps__cli_job_ref ref = {0, o->call ? NULL : (const char *const *)o->command};
                mps__cli_json_start_failure(mps__cli_json_stream(o->json_fd), &ref, r, stage,
                                            mps_client_error(client), status);
        }
        return status;
}

/* --detach: what `mpspawn wait` and `mpspawn kill` will need. */
static void print_detached(const mps_process *proc, bool json) {
        if (json)
                printf("{\"id\":%llu,\"pid\":%d}\n", (unsigned long long)mps_job_id(proc),
                       (int)mps_pid(proc));
        else
                printf("%llu %d\n", (unsigned long long)mps_job_id(proc), (int)mps_pid(proc));
        fflush(stdout);
}

/* The job has ended (or its handle was lost): its terminal's last output,
 * its JSON record, and mpspawn's exit status; *ret_signal is the signal
 * mpspawn is to end by, as the job did (0: exit with the status). */
static int job_ended(mps_client *client, mps_process *proc, const struct mps__cli_options *o,
                     struct mps__pty *pty, int *ret_signal) {
        mps_exit_info info;
        if (pty) {
                mps__pty_drain(pty);
                /* Before the record, so that its line ends as lines do. */
                mps__pty_restore_terminal();
        }
        if (mps_exit_info_get(proc, &info) < 0) {
                fprintf(stderr, "mpspawn: %s\n", mps_client_error(client));
                return MPS_EXIT_LAUNCHER;
        }
        if (o->json)
                mps__cli_print_json_exit(mps__cli_json_stream(o->json_fd), mps_job_id(proc),
                                         mps_pid(proc), &info);
        /* Killed by a signal, and not by our timeout: the shell is to see
         * the same of us (timeout(1) does this too). A timed-out job that
         * needed SIGKILL takes us with it, as timeout(1), which signals its
         * whole group, is killed with its child then. */
        if (info.exitcode < 0 && (!info.timed_out || info.exitcode == -SIGKILL))
                *ret_signal = -info.exitcode;
        return mps__cli_job_exit_status(&info, o->preserve_status);
}

/* Handles what sfd reports: WINCH, stops and continues go to the pty if
 * there is one; the others are forwarded to the job. */
static void handle_signals(mps_process *proc, int sfd, struct mps__pty *pty) {
        struct signalfd_siginfo si;
        while (mps__read_retry(sfd, &si, sizeof(si)) == sizeof(si)) {
                int sig = (int)si.ssi_signo;
                if (pty && mps__pty_signal(pty, proc, &si))
                        continue;
                if (!pty && (sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)) {
                        /* Blocked for a pty that could not be had: these
                         * stop us, as they always did. */
                        mps__pty_stop_self(NULL, sig);
                        continue;
                }
                if (!pty && sig == SIGCONT)
                        continue;
                mps_send_signal(proc, sig);
        }
}

/* Waits for the started job's end, forwarding the signals that sfd reports
 * and relaying its terminal if it has one of ours (pty, else NULL).
 * Returns mpspawn's exit status (see job_ended for *ret_signal). */
static int wait_job(mps_client *client, mps_process *proc, const struct mps__cli_options *o,
                    int sfd, struct mps__pty *pty, int *ret_signal) {
        for (;;) {
                /* Anything that reads the connection (is_alive itself, the
                 * dispatch below, a signal sent through the server) may
                 * take in the exit record; so the end is asked here, after
                 * every one of them and before every wait, and nothing
                 * poll could wait for has been consumed unseen. (It used to
                 * be asked of exitcode, then of is_alive: when is_alive
                 * took the record in between, poll waited forever.) */
                if (!mps_is_alive(proc))
                        return job_ended(client, proc, o, pty, ret_signal);
                /* A stop report was taken in too: we stop with the job, and
                 * once continued look again before waiting. */
                if (pty && mps__pty_follow_stops(pty, proc))
                        continue;
                struct pollfd pfd[5] = {
                        {.fd = mps_client_fd(client), .events = POLLIN},
                        {.fd = sfd, .events = POLLIN},
                };
                int n = 2;
                if (pty)
                        n += mps__pty_pollfds(pty, pfd + 2, 3);
                if (poll(pfd, (nfds_t)n, pty ? mps__pty_wait_ms(pty) : -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, "mpspawn: poll: %s\n", strerror(errno));
                        return MPS_EXIT_LAUNCHER;
                }
                if (pfd[1].revents & POLLIN)
                        handle_signals(proc, sfd, pty);
                if (pty)
                        mps__pty_relay(pty, pfd + 2, n - 2);
                if (pfd[0].revents)
                        mps_client_dispatch(client);
        }
}

/* The job's own terminal, if it is to have one: not for a detached job,
 * which outlives the relay. With no pty to be had, a run from a terminal
 * goes on without (as before); --pty fails. Returns 0 or the exit status. */
static int open_pty(const struct mps__cli_options *o, struct mps__pty **ret) {
        *ret = NULL;
        if (o->detach)
                return 0;
        int r = mps__pty_open(o->pty, o->spec, ret);
        if (r == 0)
                return 0;
        fprintf(stderr, "mpspawn: cannot open a pseudo-terminal for the job: %s\n",
                strerror(-r));
        if (o->pty == MPS__PTY_FORCE)
                return MPS_EXIT_LAUNCHER;
        for (int i = 0; i < 3; i++)
                mps_spec_map_fd(o->spec, i, i);
        return 0;
}

/* A server without terminal jobs (older than issue 14) refuses a start
 * with a pty; run from a terminal without --pty, the job then shares
 * mpspawn's terminal as it always did. Returns the process to start. */
static mps_process *without_pty(mps_client *client, const struct mps__cli_options *o,
                                mps_process *proc, struct mps__pty **pty) {
        mps_process_close(proc);
        mps__pty_close(*pty);
        *pty = NULL;
        proc = NULL;
        for (int i = 0; i < 3; i++)
                mps_spec_map_fd(o->spec, i, i);
        if (mps_spec_set_controlling_terminal(o->spec, false) < 0 ||
            mps_spec_set_report_stops(o->spec, false) < 0 ||
            mps_spec_set_new_session(o->spec, o->new_session) < 0 ||
            mps_process_new(client, o->spec, &proc) < 0)
                return NULL;
        return proc;
}

/* Runs the one job to its end (or, detached, only starts it). */
static int run_one(mps_client *client, const struct mps__cli_options *o, int sfd,
                   int *ret_signal) {
        mps_process *proc = NULL;
        struct mps__pty *pty = NULL;
        int status = open_pty(o, &pty);

        if (status != 0)
                return status;
        if (mps_process_new(client, o->spec, &proc) < 0) {
                fprintf(stderr, "mpspawn: %s\n", mps_client_error(client));
                mps__pty_close(pty);
                return MPS_EXIT_LAUNCHER;
        }
        status = start_job(client, proc, o, pty && o->pty == MPS__PTY_AUTO);
        if (status == START_NO_TERMINAL) {
                proc = without_pty(client, o, proc, &pty);
                if (!proc) {
                        fprintf(stderr, "mpspawn: %s\n", mps_client_error(client));
                        return MPS_EXIT_LAUNCHER;
                }
                status = start_job(client, proc, o, false);
        }
        if (status != 0) {
                mps_process_close(proc);
                mps__pty_close(pty);
                return status;
        }
        if (o->detach) {
                print_detached(proc, o->json);
                /* The handle goes; the job does not: the server keeps its
                 * exit for `mpspawn wait`. */
                mps_process_close(proc);
                return 0;
        }
        if (pty)
                mps__pty_started(pty, proc);
        status = wait_job(client, proc, o, sfd, pty, ret_signal);
        if (mps_process_close(proc) < 0) {
                /* Still running (we are leaving on an error): end it rather
                 * than leave it behind. */
                mps_kill(proc);
                mps_join(proc, -1);
                mps_process_close(proc);
        }
        mps__pty_close(pty);
        return status;
}

/* RUN and BATCH: connects, then runs the job or the batch. */
static int run_jobs(struct mps__cli_options *o) {
        mps_client *client = NULL;
        char *msg = NULL;
        int status = MPS_EXIT_LAUNCHER, r, sfd = -1, die_signal = 0;
        sigset_t pty_signals;

        /* Connecting may take the whole handshake timeout (a stopped
         * server): until then INT and TERM keep their dispositions, so that
         * they end us as they would any program, and the shell sees it. */
        r = mps__cli_open(o->socket, &client, &msg);
        if (r < 0) {
                fprintf(stderr, "mpspawn: %s\n", msg ? msg : mps_strerror(r));
                goto out;
        }
        /* Then the forwarded signals are blocked before any job exists, so
         * that none is lost between start and the wait loop. */
        sigemptyset(&pty_signals);
        if (o->mode == MPS__CLI_RUN && !o->detach && mps__pty_wanted(o->pty))
                mps__pty_add_signals(&pty_signals);
        sfd = mps__cli_signalfd_with(&pty_signals);
        if (sfd < 0) {
                fprintf(stderr, "mpspawn: signalfd: %s\n", strerror(errno));
                goto out;
        }
        if ((status = mps__cli_fds_apply(o)) != 0)
                goto out;
        status = MPS_EXIT_LAUNCHER;
        if (o->mode == MPS__CLI_BATCH) {
                status = mps__cli_batch(client, o, sfd);
                goto out;
        }
        if (!o->call && !o->command[0][0]) {
                /* As a shell says of an empty command name, and its status. */
                fprintf(stderr, "mpspawn: '': %s\n", strerror(ENOENT));
                status = MPS_EXIT_NOT_FOUND;
                goto out;
        }
        if (!o->call && (r = mps_spec_set_exec(o->spec, o->command[0],
                                               (const char *const *)o->command)) < 0) {
                fprintf(stderr, "mpspawn: cannot run '%s': %s\n", o->command[0],
                        mps_strerror(r));
                goto out;
        }
        status = run_one(client, o, sfd, &die_signal);
out:
        mps_client_close(client);
        free(msg);
        mps__safe_close(sfd);
        if (die_signal > 0)
                status = mps__cli_die_by_signal(die_signal);
        return status;
}

int mps__cli_run(struct mps__cli_options *o) {
        switch (o->mode) {
        case MPS__CLI_HELP:
                fputs(mps__cli_usage, stdout);
                return 0;
        case MPS__CLI_VERSION:
                printf("mpspawn %s\n", mps_version());
                return 0;
        case MPS__CLI_SUBCOMMAND_HELP:
                fputs(mps__cli_subcommand_usage, stdout);
                return 0;
        case MPS__CLI_SERVER:
                return run_server(o->command);
        case MPS__CLI_PS:
        case MPS__CLI_KILL:
        case MPS__CLI_WAIT:
        case MPS__CLI_STATS:
                return mps__cli_subcommand(o);
        case MPS__CLI_RUN:
        case MPS__CLI_BATCH:
                return run_jobs(o);
        }
        return MPS_EXIT_LAUNCHER;
}

int mps__cli_main(int argc, char **argv) {
        struct mps__cli_options o;
        struct mps__cli_error e;
        if (mps__cli_parse(argc, argv, &o, &e) < 0) {
                mps__cli_print_error(&e);
                mps__cli_error_done(&e);
                return MPS_EXIT_LAUNCHER;
        }
        int status = mps__cli_run(&o);
        mps__cli_options_done(&o);
        return status;
}
