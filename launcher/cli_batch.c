/* SPDX-License-Identifier: MIT */
/*
 * cli_batch.c: `mpspawn -j N`: one command per stdin line, N at a time
 * through a Pool on one connection, like xargs -P N. Lines are read only
 * when a worker is free, so an endless producer is fine; stdin is read
 * with read(2) into a bounded buffer, polled with the connection and the
 * signals, so that a signal is seen while mpspawn waits for input.
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

/* stdin, a line at a time, never more than MPS_CMDLINE_LINE_MAX bytes of
 * it held: a longer line is reported and skipped. */
struct input {
        char buf[MPS_CMDLINE_LINE_MAX + 2];
        size_t len;   /* bytes held */
        size_t taken; /* the line handed out last, to drop before the next */
        bool eof;
        bool skipping; /* the rest of an over-long line */
        unsigned long lineno;
};

struct batch {
        unsigned inflight;
        unsigned long failed;
        int stop_signal; /* the first INT/TERM/HUP/QUIT: 128+N at the end */
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

/* Drops the line handed out last. */
static void input_compact(struct input *in) {
        if (in->taken) {
                memmove(in->buf, in->buf + in->taken, in->len - in->taken);
                in->len -= in->taken;
                in->taken = 0;
        }
}

/* Reads what stdin has (once: call it when it is readable and
 * input_line asked for more, so that there is room). */
static void input_fill(struct input *in) {
        input_compact(in);
        ssize_t n = mps__read_retry(STDIN_FILENO, in->buf + in->len,
                                    sizeof(in->buf) - 1 - in->len);
        if (n <= 0) {
                if (n < 0)
                        fprintf(stderr, "mpspawn: reading standard input: %s\n",
                                strerror((int)-n));
                in->eof = true;
        } else {
                in->len += (size_t)n;
        }
}

/* The next whole line, NUL-terminated in place (valid until the next
 * call), or NULL: -1 in *status at the end of input, 0 when more input is
 * needed. An over-long line is reported (batch failure) and skipped. */
static char *input_line(struct input *in, struct batch *b, int *status) {
        for (;;) {
                input_compact(in);
                char *nl = memchr(in->buf, '\n', in->len);
                size_t n = nl ? (size_t)(nl - in->buf) : in->len;
                if (!nl && !in->eof && in->len < sizeof(in->buf) - 1) {
                        *status = 0;
                        return NULL; /* an incomplete line: wait for more */
                }
                if (!nl && in->len == 0) {
                        *status = -1;
                        return NULL; /* end of input */
                }
                in->taken = nl ? n + 1 : n;
                if (in->skipping) {
                        in->skipping = !nl && !in->eof;
                        continue;
                }
                in->lineno++;
                if (n > MPS_CMDLINE_LINE_MAX) {
                        fprintf(stderr, "mpspawn: line %lu: longer than %d bytes\n",
                                in->lineno, MPS_CMDLINE_LINE_MAX);
                        failed(b);
                        in->skipping = !nl && !in->eof;
                        continue;
                }
                in->buf[n] = '\0';
                return in->buf;
        }
}

/* Splits and submits one line. Returns 1 if a job was submitted, 0 for a
 * skipped or bad line. */
static int submit_line(struct batch *b, mps_pool *pool, mps_spec *spec, char **prefix,
                       int nprefix, unsigned long lineno, const char *line) {
        char err[256];
        char **words = NULL;
        size_t nwords = 0;
        if (mps__cmdline_split(line, &words, &nwords, err, sizeof(err)) < 0) {
                fprintf(stderr, "mpspawn: line %lu: %s\n", lineno, err);
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
                *t = (struct line_task){b, lineno};
                /* The pool copies the spec: one spec serves every line. */
                r = mps_spec_set_exec(spec, argv[0], argv);
                if (r == 0)
                        r = mps_pool_apply_async(pool, spec, on_exit_cb, on_error_cb, t);
        }
        free(argv);
        mps__cmdline_free(words);
        if (r < 0) {
                fprintf(stderr, "mpspawn: line %lu: %s\n", lineno, mps_strerror(r));
                free(t);
                failed(b);
                return 0;
        }
        b->inflight++;
        return 1;
}

int mps__cli_batch(mps_client *client, mps_spec *spec, unsigned workers, char **prefix,
                   int nprefix, bool halt_on_failure, bool json, int sfd) {
        struct batch b = {.halt_on_failure = halt_on_failure, .json = json};
        mps_pool *pool = NULL;
        struct input *in = calloc(1, sizeof(*in));
        bool eof = false;
        int status = 0;

        /* stdin carries the commands: jobs read /dev/null instead. */
        if (!in || mps_spec_map_fd(spec, 0, -1) < 0 ||
            mps_pool_new(client, workers, &pool) < 0) {
                fprintf(stderr, "mpspawn: out of memory\n");
                free(in);
                return MPS_EXIT_LAUNCHER;
        }
        while (!((eof || b.stop) && b.inflight == 0)) {
                while (!eof && !b.stop && b.inflight < workers) {
                        int more;
                        const char *line = input_line(in, &b, &more);
                        if (!line) {
                                eof = more < 0;
                                break;
                        }
                        submit_line(&b, pool, spec, prefix, nprefix, in->lineno, line);
                }
                bool want_input = !eof && !b.stop && b.inflight < workers;
                if (!want_input && b.inflight == 0)
                        continue;
                struct pollfd pfd[3] = {
                        {.fd = mps_client_fd(client), .events = POLLIN},
                        {.fd = sfd, .events = POLLIN},
                        {.fd = want_input ? STDIN_FILENO : -1, .events = POLLIN},
                };
                if (poll(pfd, 3, -1) < 0 && errno != EINTR)
                        break;
                if (pfd[2].revents)
                        input_fill(in);
                if (pfd[1].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        while (mps__read_retry(sfd, &si, sizeof(si)) == sizeof(si)) {
                                int sig = (int)si.ssi_signo;
                                mps_pool_send_signal(pool, sig);
                                /* Asked to stop: finish what runs, start nothing. */
                                if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP ||
                                    sig == SIGQUIT) {
                                        b.stop = true;
                                        if (!b.stop_signal)
                                                b.stop_signal = sig;
                                }
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
        free(in);
        /* Stopped by a signal, not all input ran: say so, as a shell would. */
        if (status == 0 && b.stop_signal)
                status = 128 + b.stop_signal;
        if (status == 0 && b.failed > 0)
                status = 123;
        return status;
}
