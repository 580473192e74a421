/*
 * cli_batch.c: `mpspawn -j N`: one command per stdin line, N at a time
 * through a Pool on one connection, like xargs -P N. Lines are read only
 * when a worker is free, so an endless producer is fine.
 */
#include "cli.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cmdline.h"
#include "fdutil.h"

#define BATCH_LINE_MAX 65536

struct batch {
        unsigned inflight;
        unsigned long failed;
        bool halt_on_failure;
        bool stop; /* start nothing more */
        bool json;
};

struct line_task {
        struct batch *b;
        unsigned long lineno;
};

static void failed(struct batch *b) {
        b->failed++;
        if (b->halt_on_failure)
                b->stop = true;
}

static void on_exit_cb(mps_process *proc, int exitcode, void *userdata) {
        struct line_task *t = userdata;
        struct batch *b = t->b;
        mps_exit_info info;
        mps_exit_info_get(proc, &info);
        if (b->json)
                mps__cli_print_json_exit(stderr, mps_job_id(proc), mps_pid(proc), &info);
        if (exitcode != 0 || info.timed_out) {
                if (info.timed_out)
                        fprintf(stderr, "mpspawn: line %lu: timed out\n", t->lineno);
                else if (exitcode > 0)
                        fprintf(stderr, "mpspawn: line %lu: exit status %d\n", t->lineno,
                                exitcode);
                else
                        fprintf(stderr, "mpspawn: line %lu: killed by SIG%s\n", t->lineno,
                                sigabbrev_np(-exitcode) ? sigabbrev_np(-exitcode) : "?");
                failed(b);
        }
        b->inflight--;
        free(t);
}

static void on_error_cb(int err, const char *message, void *userdata) {
        struct line_task *t = userdata;
        (void)err;
        fprintf(stderr, "mpspawn: line %lu: %s\n", t->lineno, message);
        failed(t->b);
        t->b->inflight--;
        free(t);
}

/* Reads, splits and submits one line. Returns 1 if a job was submitted, 0
 * for a skipped or bad line, -1 at end of input. */
static int submit_line(struct batch *b, mps_pool *pool, mps_spec *spec, char **prefix,
                       int nprefix, unsigned long *lineno, char **line, size_t *cap) {
        char err[256];
        char **words = NULL;
        size_t nwords = 0;
        ssize_t n = getline(line, cap, stdin);
        if (n < 0)
                return -1;
        (*lineno)++;
        if (n > 0 && (*line)[n - 1] == '\n')
                (*line)[--n] = '\0';
        if (n > BATCH_LINE_MAX) {
                fprintf(stderr, "mpspawn: line %lu: longer than %d bytes\n", *lineno,
                        BATCH_LINE_MAX);
                failed(b);
                return 0;
        }
        if (mps__cmdline_split(*line, &words, &nwords, err, sizeof(err)) < 0) {
                fprintf(stderr, "mpspawn: line %lu: %s\n", *lineno, err);
                failed(b);
                return 0;
        }
        if (nwords == 0 && nprefix == 0) {
                mps__cmdline_free(words);
                return 0; /* blank or comment */
        }
        size_t argc = (size_t)nprefix + nwords;
        const char **argv = calloc(argc + 1, sizeof(*argv));
        struct line_task *t = malloc(sizeof(*t));
        int r = -ENOMEM;
        if (argv && t) {
                for (int i = 0; i < nprefix; i++)
                        argv[i] = prefix[i];
                for (size_t i = 0; i < nwords; i++)
                        argv[(size_t)nprefix + i] = words[i];
                *t = (struct line_task){b, *lineno};
                /* The pool copies the spec: one spec serves every line. */
                r = mps_spec_set_exec(spec, argv[0], argv);
                if (r == 0)
                        r = mps_pool_apply_async(pool, spec, on_exit_cb, on_error_cb, t);
        }
        free(argv);
        mps__cmdline_free(words);
        if (r < 0) {
                fprintf(stderr, "mpspawn: line %lu: %s\n", *lineno, mps_strerror(r));
                free(t);
                failed(b);
                return 0;
        }
        b->inflight++;
        return 1;
}

int mps__cli_batch(mps_client *client, const mps_spec *base_spec, unsigned workers,
                   char **prefix, int nprefix, bool halt_on_failure, bool json) {
        struct batch b = {.halt_on_failure = halt_on_failure, .json = json};
        mps_pool *pool = NULL;
        mps_spec *spec = (mps_spec *)base_spec;
        char *line = NULL;
        size_t cap = 0;
        unsigned long lineno = 0;
        bool eof = false;
        int status = 0;

        /* stdin carries the commands: jobs read /dev/null instead. */
        if (mps_spec_map_fd(spec, 0, -1) < 0 || mps_pool_new(client, workers, &pool) < 0) {
                fprintf(stderr, "mpspawn: out of memory\n");
                return MPS_EXIT_LAUNCHER;
        }
        int sfd = mps__cli_signalfd();
        while (!((eof || b.stop) && b.inflight == 0)) {
                while (!eof && !b.stop && b.inflight < workers) {
                        if (submit_line(&b, pool, spec, prefix, nprefix, &lineno, &line,
                                        &cap) < 0)
                                eof = true;
                }
                if (b.inflight == 0)
                        continue;
                struct pollfd pfd[2] = {
                        {.fd = mps_client_fd(client), .events = POLLIN},
                        {.fd = sfd, .events = POLLIN},
                };
                if (poll(pfd, 2, -1) < 0 && errno != EINTR)
                        break;
                if (sfd >= 0 && (pfd[1].revents & POLLIN)) {
                        struct signalfd_siginfo si;
                        while (mps__read_retry(sfd, &si, sizeof(si)) == sizeof(si)) {
                                int sig = (int)si.ssi_signo;
                                mps_pool_send_signal(pool, sig);
                                /* Asked to stop: finish what runs, start nothing. */
                                if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP ||
                                    sig == SIGQUIT)
                                        b.stop = true;
                        }
                }
                if (pfd[0].revents && mps_client_dispatch(client) == -ENOTCONN) {
                        fprintf(stderr, "mpspawn: %s\n", mps_client_error(client));
                        status = MPS_EXIT_LAUNCHER;
                        break;
                }
        }
        mps_pool_close(pool);
        if (status == 0 && mps_pool_join(pool, -1) < 0)
                status = MPS_EXIT_LAUNCHER;
        if (mps_pool_free(pool) < 0) {
                mps_pool_terminate(pool);
                mps_pool_join(pool, -1);
                mps_pool_free(pool);
        }
        free(line);
        mps__safe_close(sfd);
        if (status == 0 && b.failed > 0)
                status = 123;
        return status;
}
