/* SPDX-License-Identifier: MIT */
/*
 * check_threads.c: one mps_client shared by many threads (issue 15), against
 * a real mpforkserver on a temporary socket and against the embedded
 * default: starts, joins with and without timeouts, is_alive/exitcode
 * polling, terminate and close from 16 threads at once; a join that never
 * ends while other threads start and join their own jobs; a Pool used from
 * several threads, with callbacks that call the library; dispatch from an
 * event-loop thread; close racing waiters; a task that ends before the
 * thread that started it is back from its send; and a host that forks.
 * Also run under ThreadSanitizer by `make check-tsan`.
 */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "clientutil.h"
#include "testutil.h"

#define NTHREADS 16

static struct tu_server srv;
static bool have_server;
static mps_client *client;

static void server_setup(void) {
        tu_server_start(&srv, NULL);
        have_server = true;
        char *msg = NULL;
        ck_assert_msg(mps_client_open(srv.path, &client, &msg) == 0, "%s", msg ? msg : "?");
}

/* The library's default: tests/run.sh leaves no shared server to find, so
 * this is the embedded one. */
static void embedded_setup(void) {
        have_server = false;
        char *msg = NULL;
        ck_assert_msg(mps_client_open(NULL, &client, &msg) == 0, "%s", msg ? msg : "?");
}

static void teardown(void) {
        mps_client_close(client);
        client = NULL;
        if (have_server) {
                int st = tu_server_stop(&srv);
                ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
}

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}


static mps_spec *exec_spec(const char *path) {
        mps_spec *s;
        const char *argv[] = {path, NULL};
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_exec(s, path, argv), 0);
        return s;
}

/* Starts spec on c (the test fails otherwise). */
static mps_process *start(mps_client *c, const mps_spec *spec) {
        mps_process *p;
        ck_assert_int_eq(mps_process_new(c, spec, &p), 0);
        int r = mps_start(p);
        ck_assert_msg(r == 0, "start: %s: %s", mps_strerror(r), mps_client_error(c));
        return p;
}


/* Waits (bounded polling) until thread tid sleeps: it is then blocked in
 * the library (in poll as the reader, or on its condition). */
static void wait_asleep(_Atomic pid_t *tid) {
        uint64_t deadline = now_ms() + 20000;
        while (atomic_load(tid) == 0 || tu_thread_state(atomic_load(tid)) != 'S') {
                ck_assert_msg(now_ms() < deadline, "thread %d never blocked",
                              (int)atomic_load(tid));
                sched_yield();
        }
}

/* ---- 16 threads on one client -------------------------------------------------- */

enum { ROUNDS = 10 };

struct hammer {
        int id;
        int jobs, exits;
        char failure[256];
};

static _Atomic int exits_seen;

/* Each thread's own jobs: /bin/true joined without a timeout, sh -c
 * 'exit N' (N its own) joined with short timeouts and polled, and every
 * third round a sleep 100 terminated (-15). Failures are recorded, not
 * asserted: Check's assertions belong to the test's main thread. */
static void *hammer_thread(void *arg) {
        struct hammer *h = arg;
        mps_spec *t = exec_spec("/bin/true"), *sleeper = cu_sh_spec("exec sleep 100");
        char script[32];
#define FAIL(...)                                                                   \
        do {                                                                        \
                snprintf(h->failure, sizeof(h->failure), __VA_ARGS__);              \
                goto out;                                                           \
        } while (0)
        for (int i = 0; i < ROUNDS; i++) {
                mps_process *p;
                int r;
                if ((r = mps_process_new(client, t, &p)) < 0 || (r = mps_start(p)) < 0)
                        FAIL("start true: %s: %s", mps_strerror(r), mps_client_error(client));
                if ((r = mps_join(p, -1)) < 0 || mps_exitcode(p) != 0)
                        FAIL("join true: %d, exit %d", r, mps_exitcode(p));
                if (mps_process_close(p) < 0)
                        FAIL("close true");
                h->jobs++;
                h->exits++;
                atomic_fetch_add(&exits_seen, 1);

                int code = (h->id * 13 + i) % 120;
                snprintf(script, sizeof(script), "exit %d", code);
                mps_spec *s = cu_sh_spec(script);
                r = mps_process_new(client, s, &p);
                mps_spec_free(s);
                if (r < 0 || (r = mps_start(p)) < 0)
                        FAIL("start exit %d: %s", code, mps_strerror(r));
                h->jobs++;
                uint64_t deadline = now_ms() + 20000;
                while (mps_is_alive(p)) {
                        if (now_ms() > deadline)
                                FAIL("exit %d never ended", code);
                        if ((r = mps_join(p, 5)) < 0)
                                FAIL("join(5): %s", mps_strerror(r));
                }
                if (mps_exitcode(p) != code)
                        FAIL("exit %d came back as %d", code, mps_exitcode(p));
                mps_process_close(p);
                h->exits++;
                atomic_fetch_add(&exits_seen, 1);

                if (i % 3 == 0) {
                        if ((r = mps_process_new(client, sleeper, &p)) < 0 ||
                            (r = mps_start(p)) < 0)
                                FAIL("start sleep: %s", mps_strerror(r));
                        h->jobs++;
                        if (mps_join(p, 0) != 0 || !mps_is_alive(p))
                                FAIL("sleep 100 is not running");
                        if ((r = mps_terminate(p)) < 0 || (r = mps_join(p, -1)) < 0)
                                FAIL("terminate: %s", mps_strerror(r));
                        if (mps_exitcode(p) != -SIGTERM)
                                FAIL("terminated sleep: exit %d", mps_exitcode(p));
                        if (mps_process_close(p) < 0)
                                FAIL("close sleep");
                        h->exits++;
                        atomic_fetch_add(&exits_seen, 1);
                }
        }
#undef FAIL
out:
        mps_spec_free(t);
        mps_spec_free(sleeper);
        return NULL;
}

START_TEST(test_sixteen_threads_share_one_client) {
        pthread_t th[NTHREADS];
        struct hammer h[NTHREADS];
        atomic_store(&exits_seen, 0);
        for (int i = 0; i < NTHREADS; i++) {
                h[i] = (struct hammer){.id = i};
                ck_assert_int_eq(pthread_create(&th[i], NULL, hammer_thread, &h[i]), 0);
        }
        int jobs = 0, exits = 0;
        for (int i = 0; i < NTHREADS; i++) {
                pthread_join(th[i], NULL);
                ck_assert_msg(h[i].failure[0] == '\0', "thread %d: %s", i, h[i].failure);
                jobs += h[i].jobs;
                exits += h[i].exits;
        }
        /* Every exit seen once: by its own thread, and no more in all. */
        ck_assert_int_eq(jobs, NTHREADS * (2 * ROUNDS + (ROUNDS + 2) / 3));
        ck_assert_int_eq(exits, jobs);
        ck_assert_int_eq(atomic_load(&exits_seen), jobs);
}
END_TEST

/* ---- a join that waits does not hold the others --------------------------------- */

struct blocked {
        mps_process *proc;
        _Atomic pid_t tid;
        _Atomic bool returned;
        int join_result;
};

static void *blocked_joiner(void *arg) {
        struct blocked *b = arg;
        atomic_store(&b->tid, gettid());
        b->join_result = mps_join(b->proc, -1);
        atomic_store(&b->returned, true);
        return NULL;
}

struct worker {
        int done;
        char failure[128];
};

static void *start_join_worker(void *arg) {
        struct worker *w = arg;
        mps_spec *s = cu_sh_spec("exit 3");
        for (int i = 0; i < 8; i++) {
                mps_process *p;
                int r;
                if ((r = mps_process_new(client, s, &p)) < 0 || (r = mps_start(p)) < 0 ||
                    (r = mps_join(p, 20000)) < 0 || mps_exitcode(p) != 3) {
                        snprintf(w->failure, sizeof(w->failure), "job %d: %s, exit %d", i,
                                 mps_strerror(r), mps_exitcode(p));
                        break;
                }
                mps_process_close(p);
                w->done++;
        }
        mps_spec_free(s);
        return NULL;
}

/* Thread X joins a job that blocks on a pipe it never gets; meanwhile 15
 * threads start and join jobs to completion; then X's job is released and
 * X's join returns. */
START_TEST(test_a_blocked_join_holds_no_other_thread) {
        int pfd[2];
        ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
        mps_spec *s = cu_sh_spec("cat >/dev/null; exit 7");
        ck_assert_int_eq(mps_spec_map_fd(s, 0, pfd[0]), 0);
        struct blocked b = {.proc = start(client, s)};
        mps_spec_free(s);
        close(pfd[0]);
        pthread_t x, th[NTHREADS - 1];
        struct worker w[NTHREADS - 1];
        ck_assert_int_eq(pthread_create(&x, NULL, blocked_joiner, &b), 0);
        wait_asleep(&b.tid);
        for (int i = 0; i < NTHREADS - 1; i++) {
                w[i] = (struct worker){0};
                ck_assert_int_eq(pthread_create(&th[i], NULL, start_join_worker, &w[i]), 0);
        }
        struct timespec limit;
        clock_gettime(CLOCK_REALTIME, &limit);
        limit.tv_sec += 30;
        for (int i = 0; i < NTHREADS - 1; i++) {
                ck_assert_msg(pthread_timedjoin_np(th[i], NULL, &limit) == 0,
                              "worker %d is stuck behind the blocked join", i);
                ck_assert_msg(w[i].failure[0] == '\0', "worker %d: %s", i, w[i].failure);
                ck_assert_int_eq(w[i].done, 8);
        }
        ck_assert(!atomic_load(&b.returned));
        ck_assert_int_eq(mps_is_alive(b.proc), 1);
        close(pfd[1]); /* cat sees EOF */
        pthread_join(x, NULL);
        ck_assert_int_eq(b.join_result, 0);
        ck_assert_int_eq(mps_exitcode(b.proc), 7);
        ck_assert_int_eq(mps_process_close(b.proc), 0);
}
END_TEST

/* ---- the Pool from several threads --------------------------------------------- */

enum { POOL_THREADS = 4, POOL_TASKS = 25 };

struct pool_count {
        _Atomic int done[POOL_THREADS * POOL_TASKS];
        int codes[POOL_THREADS * POOL_TASKS];
        _Atomic int errors;
        _Atomic int concurrent, max_concurrent;
};

struct pool_ref {
        struct pool_count *c;
        int i;
};

static void pool_done(mps_process *proc, int exitcode, void *ud) {
        struct pool_ref *r = ud;
        /* Callbacks of one client never overlap. */
        int now = atomic_fetch_add(&r->c->concurrent, 1) + 1;
        if (now > atomic_load(&r->c->max_concurrent))
                atomic_store(&r->c->max_concurrent, now);
        (void)proc;
        r->c->codes[r->i] = exitcode;
        atomic_fetch_add(&r->c->done[r->i], 1);
        atomic_fetch_sub(&r->c->concurrent, 1);
}

static void pool_error(int err, const char *message, void *ud) {
        struct pool_ref *r = ud;
        (void)err;
        (void)message;
        atomic_fetch_add(&r->c->errors, 1);
        atomic_fetch_add(&r->c->done[r->i], 1);
}

struct pool_thread {
        mps_pool *pool;
        struct pool_ref refs[POOL_TASKS];
        int first, failures;
};

static void *pool_submitter(void *arg) {
        struct pool_thread *pt = arg;
        char script[32];
        for (int k = 0; k < POOL_TASKS; k++) {
                snprintf(script, sizeof(script), "exit %d", (pt->first + k) % 50);
                mps_spec *s = cu_sh_spec(script);
                if (mps_pool_apply_async(pt->pool, s, pool_done, pool_error, &pt->refs[k]) < 0)
                        pt->failures++;
                mps_spec_free(s);
        }
        return NULL;
}

START_TEST(test_pool_shared_by_threads_calls_back_once_each) {
        static struct pool_count count;
        memset(&count, 0, sizeof(count));
        mps_pool *pool;
        ck_assert_int_eq(mps_pool_new(client, 6, &pool), 0);
        pthread_t th[POOL_THREADS];
        static struct pool_thread pt[POOL_THREADS];
        for (int t = 0; t < POOL_THREADS; t++) {
                pt[t] = (struct pool_thread){.pool = pool, .first = t * POOL_TASKS};
                for (int k = 0; k < POOL_TASKS; k++)
                        pt[t].refs[k] = (struct pool_ref){&count, t * POOL_TASKS + k};
                ck_assert_int_eq(pthread_create(&th[t], NULL, pool_submitter, &pt[t]), 0);
        }
        for (int t = 0; t < POOL_THREADS; t++) {
                pthread_join(th[t], NULL);
                ck_assert_int_eq(pt[t].failures, 0);
        }
        ck_assert_int_eq(mps_pool_close(pool), 0);
        ck_assert_int_eq(mps_pool_join(pool, 30000), 0);
        for (int i = 0; i < POOL_THREADS * POOL_TASKS; i++) {
                ck_assert_int_eq(atomic_load(&count.done[i]), 1);
                ck_assert_int_eq(count.codes[i], i % 50);
        }
        ck_assert_int_eq(atomic_load(&count.errors), 0);
        ck_assert_int_eq(atomic_load(&count.max_concurrent), 1);
        ck_assert_int_eq(mps_pool_free(pool), 0);
}
END_TEST

struct reentrant {
        mps_pool *pool;
        _Atomic int first, second;
        int nested_exit;
        int second_code;
};

static void second_done(mps_process *proc, int exitcode, void *ud) {
        struct reentrant *re = ud;
        (void)proc;
        re->second_code = exitcode;
        atomic_fetch_add(&re->second, 1);
}

/* A callback that queues another task and starts and joins a process of
 * its own on the same client: the reading role is its thread's, so the
 * join reads directly. */
static void first_done(mps_process *proc, int exitcode, void *ud) {
        struct reentrant *re = ud;
        (void)proc;
        (void)exitcode;
        mps_spec *s = cu_sh_spec("exit 9");
        mps_process *p;
        re->nested_exit = -1;
        if (mps_process_new(client, s, &p) == 0 && mps_start(p) == 0 && mps_join(p, -1) == 0)
                re->nested_exit = mps_exitcode(p);
        mps_process_close(p);
        mps_spec_free(s);
        s = cu_sh_spec("exit 11");
        if (mps_pool_apply_async(re->pool, s, second_done, NULL, re) < 0)
                re->nested_exit = -2;
        mps_spec_free(s);
        atomic_fetch_add(&re->first, 1);
}

START_TEST(test_a_callback_may_call_the_library) {
        static struct reentrant re;
        memset(&re, 0, sizeof(re));
        ck_assert_int_eq(mps_pool_new(client, 2, &re.pool), 0);
        mps_spec *s = cu_sh_spec("exit 5");
        ck_assert_int_eq(mps_pool_apply_async(re.pool, s, first_done, NULL, &re), 0);
        mps_spec_free(s);
        /* An event loop on this thread: the fd, then dispatch. */
        int fd = mps_client_fd(client);
        ck_assert_int_ge(fd, 3);
        uint64_t deadline = now_ms() + 20000;
        while (atomic_load(&re.second) == 0) {
                ck_assert(now_ms() < deadline);
                struct pollfd p = {.fd = fd, .events = POLLIN};
                poll(&p, 1, 100);
                ck_assert_int_ge(mps_client_dispatch(client), 0);
        }
        ck_assert_int_eq(atomic_load(&re.first), 1);
        ck_assert_int_eq(re.nested_exit, 9);
        ck_assert_int_eq(re.second_code, 11);
        ck_assert_int_eq(mps_pool_close(re.pool), 0);
        ck_assert_int_eq(mps_pool_join(re.pool, -1), 0);
        ck_assert_int_eq(mps_pool_free(re.pool), 0);
}
END_TEST

/* ---- dispatch from an event loop while others join ------------------------------ */

struct loop {
        _Atomic bool stop;
        _Atomic int callbacks;
        int dispatch_errors;
};

static void loop_done(mps_process *proc, int exitcode, void *ud) {
        struct loop *l = ud;
        (void)proc;
        if (exitcode == 4)
                atomic_fetch_add(&l->callbacks, 1);
}

static void *event_loop(void *arg) {
        struct loop *l = arg;
        int fd = mps_client_fd(client);
        while (!atomic_load(&l->stop)) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                poll(&p, 1, 20);
                if (mps_client_dispatch(client) < 0)
                        l->dispatch_errors++;
        }
        return NULL;
}

START_TEST(test_dispatch_from_an_event_loop_while_threads_join) {
        static struct loop l;
        memset(&l, 0, sizeof(l));
        mps_pool *pool;
        ck_assert_int_eq(mps_pool_new(client, 4, &pool), 0);
        mps_spec *s = cu_sh_spec("exit 4");
        for (int i = 0; i < 20; i++)
                ck_assert_int_eq(mps_pool_apply_async(pool, s, loop_done, NULL, &l), 0);
        mps_spec_free(s);
        pthread_t ev, th[8];
        struct worker w[8];
        ck_assert_int_eq(pthread_create(&ev, NULL, event_loop, &l), 0);
        for (int i = 0; i < 8; i++) {
                w[i] = (struct worker){0};
                ck_assert_int_eq(pthread_create(&th[i], NULL, start_join_worker, &w[i]), 0);
        }
        for (int i = 0; i < 8; i++) {
                pthread_join(th[i], NULL);
                ck_assert_msg(w[i].failure[0] == '\0', "worker %d: %s", i, w[i].failure);
        }
        /* The pool's callbacks ran on whichever thread read: the loop's or
         * a joiner's; all of them, once. */
        uint64_t deadline = now_ms() + 20000;
        while (atomic_load(&l.callbacks) < 20)
                ck_assert_msg(now_ms() < deadline, "%d callbacks", atomic_load(&l.callbacks));
        atomic_store(&l.stop, true);
        pthread_join(ev, NULL);
        ck_assert_int_eq(l.dispatch_errors, 0);
        ck_assert_int_eq(atomic_load(&l.callbacks), 20);
        ck_assert_int_eq(mps_pool_close(pool), 0);
        ck_assert_int_eq(mps_pool_join(pool, -1), 0);
        ck_assert_int_eq(mps_pool_free(pool), 0);
}
END_TEST

/* ---- a task that ends before its start returns --------------------------------- */

/*
 * The library's sendmsg is this one (libmpspawn.a is linked into this
 * binary). A thread that arms it has its next spawn request either sent
 * and then held (SEND_HOLD), or not sent: the connection is shut down and
 * the send fails with EPIPE (SEND_LOSE), each time until `release` is
 * readable. The tests make that "the reader has run the task's callback
 * and the Pool has freed the task", the order a preempted starter sees on
 * a loaded machine.
 */
enum send_mode { SEND_PLAIN, SEND_HOLD, SEND_LOSE };
static _Thread_local enum send_mode send_mode;
static int release[2] = {-1, -1};

static void wait_release(void) {
        struct pollfd p = {.fd = release[0], .events = POLLIN};
        poll(&p, 1, 20000);
}

ssize_t sendmsg(int fd, const struct msghdr *mh, int flags) {
        static ssize_t (*real)(int, const struct msghdr *, int);
        if (!real)
                real = (ssize_t (*)(int, const struct msghdr *, int))dlsym(RTLD_NEXT, "sendmsg");
        /* The start's own request, not an env request sent before it. */
        enum send_mode mode = send_mode;
        if (mode == SEND_PLAIN || !memmem(mh->msg_iov[0].iov_base, mh->msg_iov[0].iov_len,
                                          "\"op\":\"spawn\"", 12))
                return real(fd, mh, flags);
        send_mode = SEND_PLAIN;
        if (mode == SEND_LOSE) {
                shutdown(fd, SHUT_RDWR);
                wait_release();
                errno = EPIPE;
                return -1;
        }
        ssize_t n = real(fd, mh, flags);
        int saved = errno;
        wait_release();
        errno = saved;
        return n;
}

struct early_end {
        _Atomic bool stop;
        _Atomic int callbacks, errors;
        int code, err;
};

static void early_done(mps_process *proc, int exitcode, void *ud) {
        struct early_end *e = ud;
        (void)proc;
        e->code = exitcode;
        atomic_fetch_add(&e->callbacks, 1);
}

static void early_error(int err, const char *message, void *ud) {
        struct early_end *e = ud;
        (void)message;
        e->err = err;
        atomic_fetch_add(&e->errors, 1);
}

/* Reads until told to stop (or the connection is gone); once a dispatch
 * has run a callback (and so freed the task), lets the held sender go. */
static void *early_reader(void *arg) {
        struct early_end *e = arg;
        int fd = mps_client_fd(client);
        bool released = false;
        while (!atomic_load(&e->stop)) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                poll(&p, 1, 20);
                int r = mps_client_dispatch(client);
                if (!released && atomic_load(&e->callbacks) + atomic_load(&e->errors) > 0)
                        released = write(release[1], "x", 1) == 1;
                if (r < 0 && released)
                        break;
        }
        return NULL;
}

/* Starts one task with sendmsg in `mode`, a reader on another thread;
 * returns what mps_pool_apply_async returned. */
static int start_early_ending(struct early_end *e, enum send_mode mode) {
        memset(e, 0, sizeof(*e));
        ck_assert_int_eq(pipe2(release, O_CLOEXEC), 0);
        mps_pool *pool;
        ck_assert_int_eq(mps_pool_new(client, 2, &pool), 0);
        pthread_t reader;
        ck_assert_int_eq(pthread_create(&reader, NULL, early_reader, e), 0);
        mps_spec *s = cu_sh_spec("exit 6");
        send_mode = mode;
        int r = mps_pool_apply_async(pool, s, early_done, early_error, e);
        send_mode = SEND_PLAIN;
        mps_spec_free(s);
        atomic_store(&e->stop, true);
        pthread_join(reader, NULL);
        ck_assert_int_eq(mps_pool_close(pool), 0);
        ck_assert_int_ge(mps_pool_join(pool, -1), -ENOTCONN);
        ck_assert_int_eq(mps_pool_free(pool), 0);
        close(release[0]);
        close(release[1]);
        return r;
}

/* The task's handle is freed on the reader's thread while the starter is
 * still in mps_pool_apply_async, its request out: the starter must not
 * touch it again (it read its client from the freed handle, and crashed
 * under load, before). */
START_TEST(test_a_task_may_end_before_its_start_returns) {
        static struct early_end e;
        ck_assert_int_eq(start_early_ending(&e, SEND_HOLD), 0);
        /* Held until the callback had run: it ran once, with the code. */
        ck_assert_int_eq(atomic_load(&e.callbacks), 1);
        ck_assert_int_eq(e.code, 6);
        ck_assert_int_eq(atomic_load(&e.errors), 0);
}
END_TEST

/* The connection is lost while the starter's send fails: the loss reports
 * the start (its error callback, once, on the reader) and frees the task,
 * and the starter, back from the failed send, must not touch it either. */
START_TEST(test_a_start_lost_with_its_send_is_reported_once) {
        static struct early_end e;
        ck_assert_int_eq(start_early_ending(&e, SEND_LOSE), 0);
        ck_assert_int_eq(atomic_load(&e.errors), 1);
        ck_assert_int_eq(e.err, -ENOTCONN);
        ck_assert_int_eq(atomic_load(&e.callbacks), 0);
}
END_TEST

/* ---- close racing waiters ------------------------------------------------------- */

struct closer_waiter {
        mps_client *c;
        mps_process *proc;
        bool by_id; /* waits with mps_client_wait_job instead */
        _Atomic pid_t tid;
        int result;
};

static void *waiter_thread(void *arg) {
        struct closer_waiter *w = arg;
        atomic_store(&w->tid, gettid());
        if (w->by_id) {
                mps_exit_info info;
                w->result = mps_client_wait_job(w->c, mps_job_id(w->proc), -1, &info);
        } else {
                w->result = mps_join(w->proc, -1);
        }
        return NULL;
}

START_TEST(test_close_wakes_every_waiter) {
        enum { N = 8 };
        int fds_before = tu_count_fds();
        mps_client *c;
        char *msg = NULL;
        ck_assert_msg(mps_client_open(srv.path, &c, &msg) == 0, "%s", msg ? msg : "?");
        mps_spec *s = cu_sh_spec("exec sleep 100");
        ck_assert_int_eq(mps_spec_set_daemon(s, true), 0);
        struct closer_waiter w[N];
        pthread_t th[N];
        for (int i = 0; i < N; i++) {
                w[i] = (struct closer_waiter){.c = c, .proc = start(c, s), .by_id = i % 4 == 3};
                ck_assert_int_eq(pthread_create(&th[i], NULL, waiter_thread, &w[i]), 0);
        }
        mps_spec_free(s);
        for (int i = 0; i < N; i++)
                wait_asleep(&w[i].tid);
        mps_client_close(c);
        for (int i = 0; i < N; i++) {
                pthread_join(th[i], NULL);
                ck_assert_int_eq(w[i].result, -ENOTCONN);
                ck_assert_int_eq(mps_is_alive(w[i].proc), 0);
                ck_assert_int_eq(mps_process_close(w[i].proc), 0);
        }
        /* The last handle closed the socket; the daemons go with it. */
        ck_assert_int_eq(tu_count_fds(), fds_before);
}
END_TEST

/* ---- a host that forks ------------------------------------------------------------ */

/* In the child: every call on the parent's client refuses, with the
 * message; closing frees memory only. Returns the child's exit status. */
static int child_calls(mps_process *daemon_job) {
        mps_spec *s = exec_spec("/bin/true");
        mps_process *p = NULL;
        char want[128];
        int bad = 0;
        snprintf(want, sizeof(want), "this client belongs to the parent process (pid %d)",
                 (int)getppid());
        if (mps_process_new(client, s, &p) != -ENOTCONN)
                bad |= 1;
        if (!strstr(mps_client_error(client), want))
                bad |= 2;
        if (!strstr(mps_client_error(client), "a forked child opens its own with mps_client_open"))
                bad |= 4;
        if (mps_join(daemon_job, 0) != -ENOTCONN)
                bad |= 8;
        if (mps_client_dispatch(client) != -ENOTCONN)
                bad |= 16;
        mps_job_info *jobs;
        size_t n;
        if (mps_client_list_jobs(client, &jobs, &n) != -ENOTCONN)
                bad |= 32;
        if (mps_send_signal(daemon_job, SIGKILL) != -ENOTCONN)
                bad |= 64;
        if (mps_client_fd(client) != -ENOTCONN)
                bad |= 128;
        mps_spec_free(s);
        if (mps_process_close(daemon_job) != 0)
                bad |= 256;
        mps_client_close(client);
        return bad;
}

START_TEST(test_a_forked_child_never_talks_on_the_parents_connection) {
        mps_spec *s = cu_sh_spec("exec sleep 100");
        ck_assert_int_eq(mps_spec_set_daemon(s, true), 0);
        mps_process *daemon_job = start(client, s);
        mps_spec_free(s);
        pid_t job_pid = mps_pid(daemon_job);
        pid_t child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0)
                _exit(child_calls(daemon_job));
        int st;
        ck_assert_int_eq(waitpid(child, &st, 0), child);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: status %#x", st);
        /* The parent is unaffected: its daemon job runs, its client works. */
        ck_assert_int_eq(mps_is_alive(daemon_job), 1);
        ck_assert_int_eq(kill(job_pid, 0), 0);
        mps_spec *t = exec_spec("/bin/true");
        mps_process *p = start(client, t);
        mps_spec_free(t);
        ck_assert_int_eq(mps_join(p, -1), 0);
        ck_assert_int_eq(mps_exitcode(p), 0);
        ck_assert_int_eq(mps_process_close(p), 0);
        ck_assert_int_eq(mps_kill(daemon_job), 0);
        ck_assert_int_eq(mps_join(daemon_job, -1), 0);
        ck_assert_int_eq(mps_exitcode(daemon_job), -SIGKILL);
        ck_assert_int_eq(mps_process_close(daemon_job), 0);
}
END_TEST

/* A failure on one thread is that thread's message; the other thread's
 * stays its own. */
struct err_thread {
        const char *path;
        char seen[512];
        int r;
};

static void *failing_start(void *arg) {
        struct err_thread *e = arg;
        mps_spec *s = exec_spec(e->path);
        mps_process *p;
        e->r = mps_process_new(client, s, &p);
        if (e->r == 0)
                e->r = mps_start(p);
        snprintf(e->seen, sizeof(e->seen), "%s", mps_client_error(client));
        if (e->r == 0)
                mps_join(p, -1);
        mps_process_close(p);
        mps_spec_free(s);
        return NULL;
}

START_TEST(test_each_thread_sees_its_own_error) {
        struct err_thread a = {.path = "/no/such/program-a"}, b = {.path = "/no/such/program-b"};
        pthread_t ta, tb;
        ck_assert_int_eq(pthread_create(&ta, NULL, failing_start, &a), 0);
        ck_assert_int_eq(pthread_create(&tb, NULL, failing_start, &b), 0);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        ck_assert_int_eq(a.r, -ENOENT);
        ck_assert_int_eq(b.r, -ENOENT);
        ck_assert_msg(strstr(a.seen, "program-a") && !strstr(a.seen, "program-b"), "%s", a.seen);
        ck_assert_msg(strstr(b.seen, "program-b") && !strstr(b.seen, "program-a"), "%s", b.seen);
        /* This thread failed in nothing: no message of theirs. */
        ck_assert_str_eq(mps_client_error(client), "");
}
END_TEST

static Suite *threads_suite(void) {
        Suite *s = suite_create("threads");
        TCase *t = tcase_create("server");
        tcase_add_checked_fixture(t, server_setup, teardown);
        tcase_set_timeout(t, 60);
        tcase_add_test(t, test_sixteen_threads_share_one_client);
        tcase_add_test(t, test_a_blocked_join_holds_no_other_thread);
        tcase_add_test(t, test_pool_shared_by_threads_calls_back_once_each);
        tcase_add_test(t, test_a_callback_may_call_the_library);
        tcase_add_test(t, test_dispatch_from_an_event_loop_while_threads_join);
        tcase_add_test(t, test_a_task_may_end_before_its_start_returns);
        tcase_add_test(t, test_a_start_lost_with_its_send_is_reported_once);
        tcase_add_test(t, test_close_wakes_every_waiter);
        tcase_add_test(t, test_a_forked_child_never_talks_on_the_parents_connection);
        tcase_add_test(t, test_each_thread_sees_its_own_error);
        suite_add_tcase(s, t);
        t = tcase_create("embedded");
        tcase_add_checked_fixture(t, embedded_setup, teardown);
        tcase_set_timeout(t, 60);
        tcase_add_test(t, test_sixteen_threads_share_one_client);
        tcase_add_test(t, test_a_blocked_join_holds_no_other_thread);
        tcase_add_test(t, test_a_forked_child_never_talks_on_the_parents_connection);
        suite_add_tcase(s, t);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(threads_suite());
        srunner_run_all(sr, CK_ENV);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
