/* SPDX-License-Identifier: MIT */
/*
 * libuv.c: libmpspawn in a libuv loop.
 *
 *   cc -std=c11 libuv.c $(pkg-config --cflags --libs mpspawn libuv) -o libuv
 *   ./libuv [SOCKET]     (no SOCKET: the library's default server)
 *
 * The same program as epoll.c, with the loop's own handles: a uv_poll_t on
 * the client's fd, one uv_poll_t on each job's sentinel, uv_timer_t for the
 * tick. It starts 8 jobs `sh -c 'exit K'` (K distinct) and one `sleep 0.3`,
 * and learns of every end in two ways:
 *
 *  (a) the client's fd is readable: mps_client_dispatch() reads the
 *      server's messages without blocking; then each job's state says
 *      whether it ended;
 *  (b) a job's sentinel (a pidfd) is readable: that job has ended;
 *      mps_join(proc, 0) takes its exit record.
 *
 * A server would use one of the two; this one uses both on every job and
 * checks that they agree. A Pool (2 workers, 4 tasks) runs in the same
 * loop: its callbacks are called from inside dispatch. A 10 ms timer must
 * tick while `sleep 0.3` runs: the loop never waits for a job.
 *
 * uv_poll_init() makes the fds it watches non-blocking. That is harmless
 * here: the library never relies on a blocking socket (it polls and sends
 * with MSG_DONTWAIT), and nobody waits on a sentinel with waitid().
 * Callbacks run on the loop's thread, and so do the Pool's callbacks.
 *
 * Exits 0 only if every exit code was the expected one.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <mpspawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#define NJOBS 9  /* 8 `sh -c 'exit K'` and the sleeper, last */
#define NTASKS 4 /* pool tasks, `sh -c 'exit 20+i'` */
#define DEADLINE_MS 20000 /* then give up */

struct job {
        mps_process *proc;
        char what[48]; /* its command, for the report */
        int expected;
        int by_dispatch; /* the exit code (a), MPS_EXITCODE_NONE until seen */
        int by_sentinel; /* the exit code (b) */
        uv_poll_t sentinel;
        bool watched; /* sentinel is an open handle */
};

static struct {
        mps_client *client;
        uv_loop_t loop;
        uv_poll_t client_poll;
        uv_timer_t tick, deadline;
        struct job jobs[NJOBS];
        int task_code[NTASKS];
        unsigned tasks_done;
        unsigned ticks_while_sleeping;
        bool failed, finishing;
} app;

static void fail(const char *what, int err) {
        fprintf(stderr, "libuv: %s: %s (%s)\n", what, mps_strerror(err),
                mps_client_error(app.client));
        app.failed = true;
}

static mps_spec *shell_spec(const char *script) {
        const char *argv[] = {"sh", "-c", script, NULL};
        mps_spec *spec;
        if (mps_spec_new(&spec) < 0)
                return NULL;
        if (mps_spec_set_exec(spec, "sh", argv) < 0) {
                mps_spec_free(spec);
                return NULL;
        }
        return spec;
}

static bool all_done(void) {
        for (int i = 0; i < NJOBS; i++)
                if (app.jobs[i].by_dispatch == MPS_EXITCODE_NONE ||
                    app.jobs[i].by_sentinel == MPS_EXITCODE_NONE)
                        return false;
        return app.tasks_done == NTASKS;
}

static void close_sentinel(struct job *j) {
        if (!j->watched)
                return;
        j->watched = false;
        uv_poll_stop(&j->sentinel);
        uv_close((uv_handle_t *)&j->sentinel, NULL);
}

/* Done, or failed: closing every handle lets uv_run() return. The client's
 * fd is closed only after that (mps_client_close in main): libuv must not
 * poll an fd that was closed under it. */
static void finish_if_done(void) {
        if (app.finishing || (!app.failed && !all_done()))
                return;
        app.finishing = true;
        for (int i = 0; i < NJOBS; i++)
                close_sentinel(&app.jobs[i]);
        uv_poll_stop(&app.client_poll);
        uv_close((uv_handle_t *)&app.client_poll, NULL);
        uv_timer_stop(&app.tick);
        uv_close((uv_handle_t *)&app.tick, NULL);
        uv_timer_stop(&app.deadline);
        uv_close((uv_handle_t *)&app.deadline, NULL);
}

/*
 * Way (a): which jobs have an exit record now? mps_exit_info_get() only
 * looks at what was already read (it fails with -EAGAIN before the record),
 * so this scan reads no message itself. mps_is_alive() and mps_exitcode()
 * of a running job would first read what is waiting (so that they agree
 * with its sentinel), and a message read while looking at job i could end
 * job j that was looked at already, leaving the socket drained and nobody
 * to notice. Any call that may read messages (dispatch, start, join) is
 * therefore followed by this scan.
 */
static void scan_ended(void) {
        for (int i = 0; i < NJOBS; i++) {
                struct job *j = &app.jobs[i];
                mps_exit_info info;
                if (!j->proc || j->by_dispatch != MPS_EXITCODE_NONE ||
                    mps_exit_info_get(j->proc, &info) < 0)
                        continue;
                /* Ended: neither call below has anything left to read. */
                if (mps_is_alive(j->proc))
                        fprintf(stderr, "libuv: job %d has an exit record but is alive?\n", i);
                j->by_dispatch = mps_exitcode(j->proc);
        }
        finish_if_done();
}

/* A pool task ended: called from inside whichever library call read its
 * exit record (dispatch here, or a start or join), on this thread. */
static void task_done(mps_process *proc, int exitcode, void *data) {
        (void)proc;
        app.task_code[(intptr_t)data] = exitcode;
        app.tasks_done++;
}

static void task_failed(int err, const char *message, void *data) {
        fprintf(stderr, "libuv: pool task %d: %s: %s\n", (int)(intptr_t)data,
                mps_strerror(err), message);
        app.failed = true;
        app.tasks_done++;
}

static void on_tick(uv_timer_t *t) {
        (void)t;
        /* libuv calls a repeating timer once per loop turn however late it
         * is: a loop blocked for 300 ms would tick once, not 30 times. */
        const struct job *s = &app.jobs[NJOBS - 1];
        if (s->proc && s->by_sentinel == MPS_EXITCODE_NONE)
                app.ticks_while_sleeping++;
}

static void on_deadline(uv_timer_t *t) {
        (void)t;
        fprintf(stderr, "libuv: not done after %d ms\n", DEADLINE_MS);
        app.failed = true;
        finish_if_done();
}

static void on_client(uv_poll_t *h, int status, int events) {
        (void)h;
        (void)events;
        int r = status < 0 ? -EIO : mps_client_dispatch(app.client);
        if (r < 0)
                fail("the connection", r);
        scan_ended();
}

/* Way (b): the job's pidfd is readable, so the job has ended. Its exit
 * record may be a moment behind (the server reaps it, then sends it):
 * join(0) reads up to it, a short wait like mps_start's. A pidfd stays
 * readable, so its handle is closed now. */
static void on_sentinel(uv_poll_t *h, int status, int events) {
        struct job *j = h->data;
        (void)events;
        close_sentinel(j);
        int r = status < 0 ? -EIO : mps_join(j->proc, 0);
        if (r < 0)
                fail("mps_join", r);
        else
                j->by_sentinel = mps_exitcode(j->proc);
        scan_ended();
}

/* Starts job i and watches its sentinel. mps_start() returns once the
 * program has been exec'ed: one short round trip to the server (it never
 * waits for the job to run), during which it also reads other messages. */
static int start_job(int i, const mps_spec *spec, const char *what, int expected) {
        struct job *j = &app.jobs[i];
        snprintf(j->what, sizeof(j->what), "%s", what);
        j->expected = expected;
        int r = mps_process_new(app.client, spec, &j->proc);
        if (r < 0)
                return r;
        if ((r = mps_start(j->proc)) < 0)
                return r;
        if (uv_poll_init(&app.loop, &j->sentinel, mps_sentinel(j->proc)) < 0)
                return -EIO;
        j->sentinel.data = j;
        j->watched = true;
        return uv_poll_start(&j->sentinel, UV_READABLE, on_sentinel) < 0 ? -EIO : 0;
}

static int start_all(void) {
        char script[24], what[48];
        int r = 0;
        for (int i = 0; i < NJOBS - 1 && r == 0; i++) {
                snprintf(script, sizeof(script), "exit %d", 10 + i);
                snprintf(what, sizeof(what), "sh -c '%s'", script);
                mps_spec *spec = shell_spec(script);
                r = spec ? start_job(i, spec, what, 10 + i) : -ENOMEM;
                mps_spec_free(spec);
        }
        if (r == 0) {
                const char *argv[] = {"sleep", "0.3", NULL};
                mps_spec *spec;
                r = mps_spec_new(&spec);
                if (r == 0 && (r = mps_spec_set_exec(spec, "sleep", argv)) == 0)
                        r = start_job(NJOBS - 1, spec, "sleep 0.3", 0);
                mps_spec_free(spec);
        }
        return r;
}

/* Queues the pool's tasks: apply_async only sends (never waits). */
static int queue_tasks(mps_pool *pool) {
        char script[32];
        for (int i = 0; i < NTASKS; i++) {
                snprintf(script, sizeof(script), "exit %d", 20 + i);
                mps_spec *spec = shell_spec(script);
                if (!spec)
                        return -ENOMEM;
                int r = mps_pool_apply_async(pool, spec, task_done, task_failed,
                                             (void *)(intptr_t)i);
                mps_spec_free(spec);
                if (r < 0)
                        return r;
        }
        /* No more tasks; it still runs the queued ones. Never mps_pool_join()
         * here: that would wait in the loop's place. */
        return mps_pool_close(pool);
}

/* An exit code for the report: "none" while not seen. */
static const char *code_text(int code, char buf[16]) {
        if (code == MPS_EXITCODE_NONE)
                return "none";
        snprintf(buf, 16, "%d", code);
        return buf;
}

/* What was seen, and whether it was what each job was made to do. */
static bool report(void) {
        char a[16], b[16];
        bool ok = !app.failed;
        for (int i = 0; i < NJOBS; i++) {
                const struct job *j = &app.jobs[i];
                bool good = j->by_dispatch == j->expected && j->by_sentinel == j->expected;
                if (!j->proc) {
                        printf("job %d: not started  WRONG\n", i);
                        ok = false;
                        continue;
                }
                printf("job %d (%s): expected %d, seen %s after dispatch, %s through its "
                       "sentinel%s\n", i, j->what, j->expected, code_text(j->by_dispatch, a),
                       code_text(j->by_sentinel, b), good ? "" : "  WRONG");
                ok = ok && good;
        }
        for (int i = 0; i < NTASKS; i++) {
                bool good = app.task_code[i] == 20 + i;
                printf("pool task %d: expected %d, callback got %s%s\n", i, 20 + i,
                       code_text(app.task_code[i], a), good ? "" : "  WRONG");
                ok = ok && good;
        }
        /* Two at least: one late tick could follow even a blocked loop. */
        bool ticked = app.ticks_while_sleeping >= 2;
        printf("the loop ticked %u times while `sleep 0.3` ran%s\n", app.ticks_while_sleeping,
               ticked ? "" : "  WRONG: it was blocked");
        ok = ok && ticked;
        printf("libuv: %s\n", ok ? "every exit as expected" : "FAILED");
        return ok;
}

int main(int argc, char **argv) {
        char *why = NULL;
        mps_pool *pool = NULL;
        int r = mps_client_open(argc > 1 ? argv[1] : NULL, &app.client, &why);
        if (r < 0) {
                fprintf(stderr, "libuv: no forkserver: %s\n", why ? why : mps_strerror(r));
                free(why);
                return 1;
        }
        for (int i = 0; i < NJOBS; i++)
                app.jobs[i].by_dispatch = app.jobs[i].by_sentinel = MPS_EXITCODE_NONE;
        for (int i = 0; i < NTASKS; i++)
                app.task_code[i] = MPS_EXITCODE_NONE;

        if (uv_loop_init(&app.loop) < 0 || uv_timer_init(&app.loop, &app.tick) < 0 ||
            uv_timer_init(&app.loop, &app.deadline) < 0 ||
            uv_poll_init(&app.loop, &app.client_poll, mps_client_fd(app.client)) < 0 ||
            uv_timer_start(&app.tick, on_tick, 10, 10) < 0 ||
            uv_timer_start(&app.deadline, on_deadline, DEADLINE_MS, 0) < 0 ||
            uv_poll_start(&app.client_poll, UV_READABLE, on_client) < 0) {
                fprintf(stderr, "libuv: set-up failed\n");
                return 1;
        }
        if ((r = start_all()) < 0)
                fail("starting the jobs", r);
        else if ((r = mps_pool_new(app.client, 2, &pool)) < 0 || (r = queue_tasks(pool)) < 0)
                fail("the pool", r);
        /* The starts may have read exit records already. */
        scan_ended();
        uv_run(&app.loop, UV_RUN_DEFAULT);
        uv_loop_close(&app.loop);
        bool ok = report();

        /* Every handle is closed before the client; a job or task that is
         * still running (after a failure) keeps its handle (-EBUSY), and
         * the pool likewise: the process is about to exit anyway. */
        for (int i = 0; i < NJOBS; i++)
                mps_process_close(app.jobs[i].proc);
        mps_pool_free(pool);
        mps_client_close(app.client);
        return ok ? 0 : 1;
}
