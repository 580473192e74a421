/* SPDX-License-Identifier: MIT */
/*
 * cli_batch.c: `mpspawn -j N`: one command per stdin line, N at a time
 * through a Pool on one connection, like xargs -P N. Lines are read only
 * when a worker is free, so an endless producer is fine; stdin is read
 * with read(2) into a bounded buffer, polled with the connection and the
 * signals, so that a signal is seen while mpspawn waits for input.
 *
 * xargs habits (issue 14, item 7): -0 and -d make the input NUL- or
 * DELIM-terminated items, taken literally, each one argument after
 * PROGRAM ARG...; -I REPLACE puts each item (a whole line, or a -0/-d item)
 * in place of REPLACE in PROGRAM ARG...; --progress keeps a status line on
 * stderr when it is a terminal. The words of each job go with its JSON
 * records ("line", "command").
 */
#include "cli.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
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
        char delim;    /* what ends an item: '\n', or -0's NUL, -d's DELIM */
        unsigned long lineno;
};

/* --progress: a status line on stderr, a terminal's, redrawn at most
 * PROGRESS_NS apart and cleared before anything else goes there. */
#define PROGRESS_NS 100000000ull

struct progress {
        bool on;         /* --progress and stderr is a terminal */
        bool drawn;      /* the line is on the screen now */
        uint64_t start_ns, last_ns;
};

struct batch {
        unsigned inflight;
        unsigned long failed;
        unsigned long done; /* jobs that ended, failed ones included */
        int stop_signal; /* the first INT/TERM/HUP/QUIT: 128+N at the end */
        bool halt_on_failure;
        bool stop; /* start nothing more */
        bool json;
        bool preserve_status;
        FILE *records; /* where JSON records go (stderr or --json-fd) */
        struct progress progress;
};

struct line_task {
        struct batch *b;
        unsigned long lineno;
        char **argv; /* the job's words, for its JSON record; NULL without --json */
};

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Takes the status line off the screen, so that a message or a record
 * that goes to stderr starts at the left margin. */
static void progress_clear(struct batch *b) {
        if (b->progress.drawn) {
                fputs("\r\033[K", stderr);
                fflush(stderr);
                b->progress.drawn = false;
        }
}

/* Redraws the status line if PROGRESS_NS has passed since the last time
 * (or always, with force). */
static void progress_draw(struct batch *b, bool force) {
        struct progress *p = &b->progress;
        if (!p->on)
                return;
        uint64_t now = now_ns();
        if (!force && p->drawn && now - p->last_ns < PROGRESS_NS)
                return;
        double secs = (double)(now - p->start_ns) / 1e9;
        fprintf(stderr, "\r\033[Kmpspawn: %lu done, %u running, %lu failed, %.1f/s",
                b->done, b->inflight, b->failed, secs > 0 ? (double)b->done / secs : 0.0);
        fflush(stderr);
        p->drawn = true;
        p->last_ns = now;
}

/* "mpspawn: line N: ..." on stderr, below the status line. */
__attribute__((format(printf, 3, 4))) static void say_line(struct batch *b, unsigned long lineno,
                                                           const char *fmt, ...) {
        va_list ap;
        progress_clear(b);
        fprintf(stderr, "mpspawn: line %lu: ", lineno);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static void failed(struct batch *b) {
        b->failed++;
        if (b->halt_on_failure)
                b->stop = true;
}

static void task_free(struct line_task *t) {
        mps__cmdline_free(t->argv);
        free(t);
}

/* The records go to stderr unless --json-fd (with --json-fd 2 too): clear
 * the status line first. */
static FILE *records(struct batch *b) {
        if (fileno(b->records) == STDERR_FILENO)
                progress_clear(b);
        return b->records;
}

static void on_exit_cb(mps_process *proc, int exitcode, void *userdata) {
        struct line_task *t = userdata;
        struct batch *b = t->b;
        mps_exit_info info;
        mps_exit_info_get(proc, &info);
        b->done++;
        if (b->json) {
                struct mps__cli_job_ref ref = {t->lineno, (const char *const *)t->argv};
                mps__cli_json_exit(records(b), &ref, mps_job_id(proc), mps_pid(proc), &info);
        }
        if (exitcode != 0 || info.timed_out) {
                if (info.timed_out)
                        say_line(b, t->lineno, "timed out");
                else if (exitcode > 0)
                        say_line(b, t->lineno, "exit status %d", exitcode);
                else
                        say_line(b, t->lineno, "killed by SIG%s",
                                 sigabbrev_np(-exitcode) ? sigabbrev_np(-exitcode) : "?");
                /* --preserve-status: a timed-out job that still exited 0
                 * (it handled the signal) is no failure, as timeout(1). */
                if (!(b->preserve_status && info.timed_out && exitcode == 0))
                        failed(b);
        }
        b->inflight--;
        task_free(t);
}

/* The stage of the start failure the pool reports now (pool.c). */
const char *mps__pool_failing_stage(void);
/* Queue only, then start what was queued together (pool.c, lib.h). */
void mps__pool_hold(mps_pool *pool);
void mps__pool_release(mps_pool *pool);

static void on_error_cb(int err, const char *message, void *userdata) {
        struct line_task *t = userdata;
        struct batch *b = t->b;
        b->done++;
        say_line(b, t->lineno, "%s", message);
        if (b->json) {
                const char *stage = mps__pool_failing_stage();
                struct mps__cli_job_ref ref = {t->lineno, (const char *const *)t->argv};
                mps__cli_json_start_failure(records(b), &ref, err, stage, message,
                                            mps__cli_start_status(err, stage));
        }
        failed(b);
        b->inflight--;
        task_free(t);
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
                char *nl = memchr(in->buf, in->delim, in->len);
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
                        say_line(b, in->lineno, "longer than %d bytes", MPS_CMDLINE_LINE_MAX);
                        failed(b);
                        in->skipping = !nl && !in->eof;
                        continue;
                }
                in->buf[n] = '\0';
                return in->buf;
        }
}

/* The words of the job for one input item: prefix and the line's words;
 * with -0/-d, prefix and the item itself; with -I, prefix with the item in
 * place of the replace string. Returns 0 with *ret_argv (NULL: nothing to
 * run, a blank or comment line), or -1 after saying why the item is bad. */
static int item_argv(struct batch *b, const struct mps__cli_options *o, unsigned long lineno,
                     const char *line, char ***ret_argv) {
        char err[256];
        char **words = NULL, *item = NULL;
        size_t nwords = 0;
        size_t nprefix = (size_t)o->ncommand;
        int r;

        if (o->replace) {
                r = o->delimited ? ((item = strdup(line)) ? 0 : -ENOMEM)
                                 : mps__cmdline_item(line, &item, err, sizeof(err));
                if (r == -ENOMEM)
                        snprintf(err, sizeof(err), "out of memory");
                if (r == 0 && item)
                        r = mps__cmdline_replace(o->command, nprefix, o->replace, item,
                                                 ret_argv, err, sizeof(err));
                else if (r == 0)
                        *ret_argv = NULL; /* a blank line: no item */
                free(item);
                goto out;
        }
        if (o->delimited) {
                words = calloc(2, sizeof(*words));
                if (words && !(words[0] = strdup(line))) {
                        free(words);
                        words = NULL;
                }
                nwords = 1;
                r = words ? 0 : -ENOMEM;
                if (r < 0)
                        snprintf(err, sizeof(err), "out of memory");
        } else {
                r = mps__cmdline_split(line, &words, &nwords, err, sizeof(err));
        }
        if (r < 0)
                goto out;
        if (nwords == 0 && nprefix == 0) {
                *ret_argv = NULL; /* blank or comment */
                goto out;
        }
        char **argv = calloc(nprefix + nwords + 1, sizeof(*argv));
        r = argv ? 0 : -ENOMEM;
        for (size_t i = 0; argv && i < nprefix + nwords; i++) {
                argv[i] = strdup(i < nprefix ? o->command[i] : words[i - nprefix]);
                if (!argv[i]) {
                        mps__cmdline_free(argv);
                        argv = NULL;
                        r = -ENOMEM;
                }
        }
        if (r < 0)
                snprintf(err, sizeof(err), "out of memory");
        else
                *ret_argv = argv;
out:
        mps__cmdline_free(words);
        if (r < 0) {
                say_line(b, lineno, "%s", err);
                failed(b);
                return -1;
        }
        return 0;
}

/* Submits the job of one input item. Returns 1 if a job was submitted, 0
 * for a skipped or bad item. */
static int submit_line(struct batch *b, mps_pool *pool, const struct mps__cli_options *o,
                       unsigned long lineno, const char *line) {
        char **argv = NULL;
        if (item_argv(b, o, lineno, line, &argv) < 0 || !argv)
                return 0;
        struct line_task *t = malloc(sizeof(*t));
        int r = -ENOMEM;
        if (t) {
                *t = (struct line_task){b, lineno, NULL};
                /* The pool copies the spec: one spec serves every line. */
                r = mps_spec_set_exec(o->spec, argv[0], (const char *const *)argv);
                if (r == 0)
                        r = mps_pool_apply_async(pool, o->spec, on_exit_cb, on_error_cb, t);
        }
        if (r < 0) {
                say_line(b, lineno, "%s", mps_strerror(r));
                free(t);
                mps__cmdline_free(argv);
                failed(b);
                return 0;
        }
        /* Only a record needs the words once the job is on its way. */
        if (b->json)
                t->argv = argv;
        else
                mps__cmdline_free(argv);
        b->inflight++;
        return 1;
}

/* Forwards what sfd reports to every running job. */
static void take_signals(struct batch *b, mps_pool *pool, int sfd) {
        struct signalfd_siginfo si;
        while (mps__read_retry(sfd, &si, sizeof(si)) == sizeof(si)) {
                int sig = (int)si.ssi_signo;
                mps_pool_send_signal(pool, sig);
                /* Asked to stop: finish what runs, start nothing. */
                if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT) {
                        b->stop = true;
                        if (!b->stop_signal)
                                b->stop_signal = sig;
                }
        }
}

int mps__cli_batch(mps_client *client, const struct mps__cli_options *o, int sfd) {
        struct batch b = {.halt_on_failure = o->halt_on_failure,
                          .json = o->json,
                          .preserve_status = o->preserve_status,
                          .records = o->json ? mps__cli_json_stream(o->json_fd) : NULL};
        mps_pool *pool = NULL;
        struct input *in = calloc(1, sizeof(*in));
        unsigned workers = o->jobs;
        bool eof = false;
        int status = 0;

        if (o->json && !b.records) {
                fprintf(stderr, "mpspawn: --json-fd %d: %s\n", o->json_fd, strerror(errno));
                free(in);
                return MPS_EXIT_LAUNCHER;
        }
        /* stdin carries the commands: jobs read /dev/null instead. */
        if (!in || mps_spec_map_fd(o->spec, 0, -1) < 0 ||
            mps_pool_new(client, workers, &pool) < 0) {
                fprintf(stderr, "mpspawn: out of memory\n");
                free(in);
                return MPS_EXIT_LAUNCHER;
        }
        in->delim = o->delimited ? o->delim : '\n';
        /* Nothing at all when stderr is not a terminal: a log stays clean. */
        b.progress.on = o->progress && isatty(STDERR_FILENO);
        b.progress.start_ns = now_ns();
        progress_draw(&b, true);
        while (!((eof || b.stop) && b.inflight == 0)) {
                /* The lines at hand start together, in batches. */
                mps__pool_hold(pool);
                while (!eof && !b.stop && b.inflight < workers) {
                        int more;
                        const char *line = input_line(in, &b, &more);
                        if (!line) {
                                eof = more < 0;
                                break;
                        }
                        submit_line(&b, pool, o, in->lineno, line);
                }
                mps__pool_release(pool);
                bool want_input = !eof && !b.stop && b.inflight < workers;
                if (!want_input && b.inflight == 0)
                        continue;
                struct pollfd pfd[3] = {
                        {.fd = mps_client_fd(client), .events = POLLIN},
                        {.fd = sfd, .events = POLLIN},
                        {.fd = want_input ? STDIN_FILENO : -1, .events = POLLIN},
                };
                progress_draw(&b, false);
                if (poll(pfd, 3, b.progress.on ? (int)(PROGRESS_NS / 1000000) : -1) < 0 &&
                    errno != EINTR)
                        break;
                if (pfd[2].revents)
                        input_fill(in);
                if (pfd[1].revents & POLLIN)
                        take_signals(&b, pool, sfd);
                if (pfd[0].revents && mps_client_dispatch(client) == -ENOTCONN) {
                        progress_clear(&b);
                        fprintf(stderr, "mpspawn: %s\n", mps_client_error(client));
                        status = MPS_EXIT_LAUNCHER;
                        break;
                }
        }
        progress_clear(&b);
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
