/* SPDX-License-Identifier: MIT */
/*
 * cli.c: running what the mpspawn command line asks for (parsed by
 * cli_options.c): one job with signal forwarding and the exit-status
 * conventions of env(1) and timeout(1), or the server in the foreground;
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
#include <sys/signalfd.h>
#include <unistd.h>

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

/* Starts proc. Returns 0, or the exit status after saying why it failed:
 * 127 or 126 when the exec failed, as a shell gives them; with --json, a
 * record of the failure too. */
static int start_job(mps_client *client, mps_process *proc,
                     const struct mps__cli_options *o) {
        int r = mps_start(proc);
        if (r == 0)
                return 0;
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

/* Waits for the started job's end, forwarding the signals that sfd
 * reports. Returns mpspawn's exit status. */
static int wait_job(mps_client *client, mps_process *proc, const struct mps__cli_options *o,
                    int sfd) {
        for (;;) {
                struct pollfd pfd[2] = {
                        {.fd = mps_client_fd(client), .events = POLLIN},
                        {.fd = sfd, .events = POLLIN},
                };
                if (mps_exitcode(proc) != MPS_EXITCODE_NONE) {
                        mps_exit_info info;
                        mps_exit_info_get(proc, &info);
                        if (o->json)
                                mps__cli_print_json_exit(mps__cli_json_stream(o->json_fd),
                                                         mps_job_id(proc), mps_pid(proc), &info);
                        return mps__cli_job_exit_status(&info, o->preserve_status);
                }
                /* is_alive may take in the exit record that exitcode just
                 * missed: only a handle that ended without one is lost. */
                if (!mps_is_alive(proc) && mps_exitcode(proc) == MPS_EXITCODE_NONE) {
                        fprintf(stderr, "mpspawn: %s\n", mps_client_error(client));
                        return MPS_EXIT_LAUNCHER;
                }
                if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
                        fprintf(stderr, "mpspawn: poll: %s\n", strerror(errno));
                        return MPS_EXIT_LAUNCHER;
                }
                if (pfd[1].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        while (mps__read_retry(sfd, &si, sizeof(si)) == sizeof(si))
                                mps_send_signal(proc, (int)si.ssi_signo);
                }
                if (pfd[0].revents)
                        mps_client_dispatch(client);
        }
}

/* Runs the one job to its end (or, detached, only starts it). */
static int run_one(mps_client *client, const struct mps__cli_options *o, int sfd) {
        mps_process *proc = NULL;
        int status;

        if (mps_process_new(client, o->spec, &proc) < 0) {
                fprintf(stderr, "mpspawn: %s\n", mps_client_error(client));
                return MPS_EXIT_LAUNCHER;
        }
        status = start_job(client, proc, o);
        if (status != 0) {
                mps_process_close(proc);
                return status;
        }
        if (o->detach) {
                print_detached(proc, o->json);
                /* The handle goes; the job does not: the server keeps its
                 * exit for `mpspawn wait`. */
                mps_process_close(proc);
                return 0;
        }
        status = wait_job(client, proc, o, sfd);
        if (mps_process_close(proc) < 0) {
                /* Still running (we are leaving on an error): end it rather
                 * than leave it behind. */
                mps_kill(proc);
                mps_join(proc, -1);
                mps_process_close(proc);
        }
        return status;
}

/* RUN and BATCH: connects, then runs the job or the batch. */
static int run_jobs(struct mps__cli_options *o) {
        mps_client *client = NULL;
        char *msg = NULL;
        int status = MPS_EXIT_LAUNCHER, r, sfd = -1;

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
        sfd = mps__cli_signalfd();
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
        if (!o->call && (r = mps_spec_set_exec(o->spec, o->command[0],
                                               (const char *const *)o->command)) < 0) {
                fprintf(stderr, "mpspawn: cannot run '%s': %s\n", o->command[0],
                        mps_strerror(r));
                goto out;
        }
        status = run_one(client, o, sfd);
out:
        mps_client_close(client);
        free(msg);
        mps__safe_close(sfd);
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
